"""Trial funds (R-TOP-5, R-ACC-4): once per identity on approval; staff change validity."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from djmoney.money import Money

from accounts.models import Verification
from billing.models import Grant
from core.models import AuditRecord
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory, grant
from topups.models import TrialAward, TrialSettings
from topups.services.trials import approve_verification, award_trial, change_grant_validity

from .conftest import balance


def submitted(user, identity="id-hash-A"):
    return Verification.objects.create(
        user=user,
        kind="individual",
        state="submitted",
        legal_name="Zhang San",
        identity_hash=identity,
    )


@pytest.mark.django_db
def test_approval_grants_trial_funds_from_settings():
    """R-TOP-5: approval grants the configured trial amount, expiring after the validity."""
    settings_row = TrialSettings.load()
    settings_row.amount = Money("15.00", "CNY")
    settings_row.validity_days = 10
    settings_row.save()
    user = UserFactory()
    approve_verification(submitted(user))
    trial = Grant.objects.get(account__user=user, kind="trial")
    assert trial.amount == Money("15.00", "CNY")
    assert timedelta(days=9, hours=23) < trial.expires_at - timezone.now() <= timedelta(days=10)
    assert balance(user)["trial"] == Money("15.00", "CNY")
    assert Notice.objects.filter(user=user, kind="trial_granted").exists()


@pytest.mark.django_db
def test_trial_once_per_identity_across_accounts(settings):
    """R-TOP-5, R-ACC-4: the same identity on a second account gets no second trial."""
    settings.IDENTITY_MAX_ACCOUNTS = 2
    first, second = UserFactory(), UserFactory()
    approve_verification(submitted(first, "same-identity"))
    approve_verification(submitted(second, "same-identity"))
    assert Grant.objects.filter(kind="trial").count() == 1
    assert TrialAward.objects.get().account.user == first
    assert balance(second)["trial"] == Money(0, "CNY")


@pytest.mark.django_db
def test_award_is_idempotent_for_a_replayed_signal():
    """R-TOP-5: calling the award twice for one verification grants once."""
    user = UserFactory()
    verification = approve_verification(submitted(user))
    assert award_trial(verification) is None
    assert Grant.objects.filter(kind="trial").count() == 1


@pytest.mark.django_db
def test_staff_change_grant_validity_with_audit_and_notice():
    """R-TOP-5: staff extend a grant's validity with a reason; audited and the user told."""
    user = UserFactory()
    approve_verification(submitted(user))
    trial = Grant.objects.get(kind="trial")
    staff = grant(StaffFactory(), "topups.change_grant_validity")
    new = timezone.now() + timedelta(days=60)
    change_grant_validity(trial, new, actor=staff, reason="goodwill")
    trial.refresh_from_db()
    assert trial.expires_at == new
    audit = AuditRecord.objects.get(action="change_validity", object_id=str(trial.pk))
    assert audit.actor == staff and audit.reason == "goodwill"
    assert Notice.objects.filter(user=user, kind="grant_validity_changed").exists()
    shorter = timezone.now() + timedelta(days=1)
    change_grant_validity(trial, shorter, actor=staff, reason="correction")
    trial.refresh_from_db()
    assert trial.expires_at == shorter


@pytest.mark.django_db
def test_validity_change_refusals():
    """R-TOP-5: no permission, no reason or a past date change nothing."""
    user = UserFactory()
    approve_verification(submitted(user))
    trial = Grant.objects.get(kind="trial")
    before = trial.expires_at
    staff = grant(StaffFactory(), "topups.change_grant_validity")
    with pytest.raises(PermissionDenied):
        change_grant_validity(
            trial, timezone.now() + timedelta(days=5), actor=StaffFactory(), reason="x"
        )
    with pytest.raises(ValidationError):
        change_grant_validity(trial, timezone.now() + timedelta(days=5), actor=staff, reason=" ")
    with pytest.raises(ValidationError):
        change_grant_validity(trial, timezone.now() - timedelta(days=1), actor=staff, reason="x")
    trial.refresh_from_db()
    assert trial.expires_at == before
    assert not AuditRecord.objects.filter(action="change_validity").exists()


@pytest.mark.django_db
def test_grant_validity_admin_form(client):
    """R-TOP-5: the admin form changes the validity for staff holding the permission."""
    user = UserFactory()
    approve_verification(submitted(user))
    trial = Grant.objects.get(kind="trial")
    staff = grant(StaffFactory(), "topups.change_grant_validity", "topups.view_grantvalidity")
    client.force_login(staff)
    url = f"/admin/topups/grantvalidity/{trial.pk}/change/"
    assert client.get(url).status_code == 200
    new = (timezone.localtime() + timedelta(days=45)).replace(second=0, microsecond=0)
    response = client.post(
        url, {"expires_at": new.strftime("%Y-%m-%d %H:%M"), "reason": "support case 42"}
    )
    assert response.status_code == 302
    trial.refresh_from_db()
    assert trial.expires_at == new


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_trial_race_on_one_identity_grants_once():
    """R-TOP-5, R-ACC-4: two approvals of one identity racing: the unique award admits one."""
    import threading

    from django.db import connection, transaction

    users = [UserFactory(), UserFactory()]
    verifications = [
        Verification.objects.create(
            user=u,
            kind="individual",
            state="approved",
            legal_name="Zhang San",
            identity_hash="racing-identity",
        )
        for u in users
    ]
    barrier = threading.Barrier(2)
    results = []

    def award(verification):
        try:
            with transaction.atomic():
                barrier.wait()
                results.append(award_trial(verification))
        finally:
            connection.close()

    threads = [threading.Thread(target=award, args=(v,)) for v in verifications]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is None for r in results) == [False, True]
    assert Grant.objects.filter(kind="trial").count() == 1
    assert TrialAward.objects.count() == 1


@pytest.mark.django_db
def test_grants_and_expiry_shown_to_the_user(client):
    """R-TOP-5: the user sees each grant with its expiry."""
    user = UserFactory()
    approve_verification(submitted(user))
    trial = Grant.objects.get(kind="trial")
    client.force_login(user)
    body = client.get("/topups/history/").content.decode()
    assert timezone.localtime(trial.expires_at).strftime("%Y-%m-%d %H:%M") in body
    assert "Trial funds" in body
