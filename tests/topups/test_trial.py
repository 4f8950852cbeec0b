"""Trial funds (R-TOP-5, R-ACC-4): once per identity on approval; staff change validity."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.identity import make_resident_id
from billing.models import Grant
from core.models import AuditRecord
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory, cny, grant
from topups.models import TrialAward, TrialSettings
from topups.services.trials import approve_verification, award_trial, change_grant_validity

from .conftest import balance, submit, verify

SHARED_ID = make_resident_id(date(1990, 5, 17), sequence=777)


@pytest.mark.django_db
def test_approval_grants_trial_funds_from_settings(user):
    """R-TOP-5: approval grants the configured trial amount, expiring after the validity."""
    settings_row = TrialSettings.load()
    settings_row.amount = cny("15.00")
    settings_row.validity_days = 10
    settings_row.save()
    approve_verification(submit(user))
    trial = Grant.objects.get(account__user=user, kind="trial")
    assert trial.amount == cny("15.00")
    assert timedelta(days=9, hours=23) < trial.expires_at - timezone.now() <= timedelta(days=10)
    assert balance(user)["trial"] == cny("15.00")
    assert Notice.objects.filter(user=user, kind="trial_granted").exists()


@pytest.mark.django_db
def test_trial_notice_is_in_the_users_language():
    """R-TOP-5 / R-NOT-1: the trial notice comes from its template in the user's language."""
    user = UserFactory(language="zh-hans", phone="")
    settings_row = TrialSettings.load()
    settings_row.amount = cny("15.00")
    settings_row.save()
    approve_verification(submit(user))
    notice = Notice.objects.get(user=user, kind="trial_granted")
    assert notice.subject == "已发放试用金 ¥15.00"


@pytest.mark.django_db
def test_trial_once_per_identity_across_accounts(settings):
    """R-TOP-5, R-ACC-4: the same identity on a second account gets no second trial."""
    settings.IDENTITY_MAX_ACCOUNTS = 2
    first, second = UserFactory(), UserFactory()
    approve_verification(submit(first, id_number=SHARED_ID))
    approve_verification(submit(second, id_number=SHARED_ID))
    assert Grant.objects.filter(kind="trial").count() == 1
    assert TrialAward.objects.get().account.user == first
    assert balance(second)["trial"] == cny(0)


@pytest.mark.django_db
def test_award_is_idempotent_for_a_repeated_call(user):
    """R-TOP-5: calling the award twice for one verification grants once."""
    verification = approve_verification(submit(user))
    assert award_trial(verification) is None
    assert Grant.objects.filter(kind="trial").count() == 1


@pytest.mark.django_db
def test_staff_change_grant_validity_with_audit_and_notice(user):
    """R-TOP-5: staff extend a grant's validity with a reason; audited and the user told."""
    approve_verification(submit(user))
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
def test_validity_change_refusals(user):
    """R-TOP-5: no permission, no reason or a past date change nothing."""
    approve_verification(submit(user))
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
def test_grant_validity_admin_form(client, user):
    """R-TOP-5: the admin form changes the validity for staff holding the permission."""
    approve_verification(submit(user))
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


@pytest.mark.django_db(transaction=True)
def test_trial_race_on_one_identity_grants_once(settings):
    """R-TOP-5, R-ACC-4: two approvals of one identity racing: the unique award admits one."""
    import threading

    from django.db import connection, transaction

    settings.IDENTITY_MAX_ACCOUNTS = 2
    verifications = [verify(UserFactory(), id_number=SHARED_ID) for _ in range(2)]
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
def test_grants_and_expiry_shown_to_the_user(client, user):
    """R-TOP-5: the user sees each grant with its expiry."""
    approve_verification(submit(user))
    trial = Grant.objects.get(kind="trial")
    client.force_login(user)
    body = client.get("/topups/history/").content.decode()
    assert timezone.localtime(trial.expires_at).strftime("%Y-%m-%d %H:%M") in body
    assert "Trial funds" in body
