"""Admin queues and buttons (R-ADM-1/2/3), API key locks (R-ACC-6), agreements (R-ACC-7)."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts import selectors, services
from accounts.models import (
    AgreementState,
    AgreementVersion,
    ApiKeyState,
    VerificationState,
)
from core.models import AuditRecord
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory, grant

from .conftest import submit_enterprise, submit_individual

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- verification queue
def test_review_queue_filters_and_search(client, cs_agent):
    """R-ADM-3: the queue filters by state, kind and warning, searches by email/phone."""
    alice = UserFactory(email="alice@example.com", phone="13911112222")
    submit_individual(alice)
    submit_enterprise(UserFactory(email="bob@example.com"))
    client.force_login(cs_agent)
    base = "/admin/accounts/verification/"
    assert client.get(base).context["cl"].result_count == 2
    assert client.get(base, {"q": "alice@"}).context["cl"].result_count == 1
    assert client.get(base, {"q": "13911112222"}).context["cl"].result_count == 1
    assert client.get(base, {"kind__exact": "enterprise"}).context["cl"].result_count == 1
    assert client.get(base, {"state__exact": "approved"}).context["cl"].result_count == 0
    assert client.get(base, {"check_digit_warning__exact": "1"}).context["cl"].result_count == 0


def test_queue_and_lists_are_bounded_in_queries(client, cs_agent, django_assert_max_num_queries):
    """R-ADM-3: admin queue, key list and agreement list: fixed query counts (no N+1)."""
    for _ in range(12):
        u = UserFactory()
        submit_individual(u)
        services.create_api_key(u, name="k")
    admin_user = grant(
        cs_agent, "accounts.view_apikey", "accounts.view_agreementversion", "accounts.view_user"
    )
    client.force_login(admin_user)
    for url in (
        "/admin/accounts/verification/",
        "/admin/accounts/verification/?state__exact=submitted",
        "/admin/accounts/apikey/",
        "/admin/accounts/agreementversion/",
        "/admin/accounts/user/",
    ):
        with django_assert_max_num_queries(14):
            assert client.get(url).status_code == 200


def test_cs_agent_approves_through_admin_button(client, user, cs_agent):
    """R-ACC-2 / R-ADM-2: CS approves in admin with a reason; history shows it."""
    v = submit_individual(user)
    client.force_login(cs_agent)
    page = client.get(f"/admin/accounts/verification/{v.pk}/change/").content.decode()
    assert 'data-transition="approve"' in page and 'data-transition="reject"' in page
    url = f"/admin/accounts/verification/{v.pk}/transition/approve/"
    assert client.get(url).status_code == 200
    resp = client.post(url, {"reason": "matches the ID card"})
    assert resp.status_code == 302
    v.refresh_from_db()
    assert v.state == VerificationState.APPROVED
    audit = AuditRecord.objects.get(object_id=str(v.pk), action="approve")
    assert (audit.actor, audit.reason) == (cs_agent, "matches the ID card")
    history = client.get(f"/admin/accounts/verification/{v.pk}/change/").content.decode()
    assert "matches the ID card" in history


def test_staff_without_review_permission_sees_no_buttons_and_cannot_post(client, user):
    """R-ADM-1: a viewer without review_verification cannot approve via admin."""
    v = submit_individual(user)
    viewer = grant(StaffFactory(), "accounts.view_verification")
    client.force_login(viewer)
    page = client.get(f"/admin/accounts/verification/{v.pk}/change/").content.decode()
    assert 'data-transition="approve"' not in page
    client.post(f"/admin/accounts/verification/{v.pk}/transition/approve/", {"reason": "x"})
    v.refresh_from_db()
    assert v.state == VerificationState.SUBMITTED
    assert not AuditRecord.objects.filter(action="approve").exists()


def test_reject_in_admin_needs_reason(client, user, cs_agent):
    """R-ACC-2: reject asks for a reason; without one nothing changes."""
    v = submit_individual(user)
    client.force_login(cs_agent)
    url = f"/admin/accounts/verification/{v.pk}/transition/reject/"
    assert client.post(url, {"reason": ""}).status_code == 200
    v.refresh_from_db()
    assert v.state == VerificationState.SUBMITTED
    client.post(url, {"reason": "blurred photo"})
    v.refresh_from_db()
    assert (v.state, v.rejection_reason) == (VerificationState.REJECTED, "blurred photo")


def test_capacity_exception_admin_page(client, cs_agent):
    """R-ACC-3: the exception page records note and evidence for a 16-18 year old."""
    from datetime import date

    from django.core.files.uploadedfile import SimpleUploadedFile

    today = timezone.localdate()
    birth = date(today.year - 17, 1, 1)
    user = UserFactory()
    v = services.approve_verification(submit_individual(user, birth=birth), actor=cs_agent)
    client.force_login(cs_agent)
    url = f"/admin/accounts/verification/{v.pk}/capacity-exception/"
    evidence = SimpleUploadedFile("payslip.pdf", b"%PDF-1.4 payslip", "application/pdf")
    resp = client.post(url, {"note": "payslips for 6 months", "evidence_file": evidence})
    assert resp.status_code == 302
    assert services.has_full_capacity(user) is True
    client.force_login(grant(StaffFactory(), "accounts.view_verification"))
    assert client.get(url).status_code == 403


# ---------------------------------------------------------------- API keys in admin
def test_risk_officer_locks_and_unlocks_a_key(client, risk_officer):
    """R-ACC-6: the platform locks a key (§5.2) and unlocks it; audited."""
    key, raw = services.create_api_key(UserFactory(email="owner@example.com"), name="k")
    client.force_login(risk_officer)
    assert client.get("/admin/accounts/apikey/", {"q": key.prefix}).context["cl"].result_count == 1
    assert client.get("/admin/accounts/apikey/", {"q": "owner@"}).context["cl"].result_count == 1
    client.post(f"/admin/accounts/apikey/{key.pk}/transition/lock/", {"reason": "dispute 7"})
    key.refresh_from_db()
    assert key.state == ApiKeyState.LOCKED
    assert services.resolve_api_key(raw).state == ApiKeyState.LOCKED
    client.post(f"/admin/accounts/apikey/{key.pk}/transition/unlock/", {"reason": "settled"})
    key.refresh_from_db()
    assert key.state == ApiKeyState.ACTIVE
    assert list(
        AuditRecord.objects.filter(object_id=str(key.pk)).order_by("id").values_list("action")
    ) == [("lock",), ("unlock",)]


def test_key_lock_needs_permission_and_staff_cannot_revoke(cs_agent):
    """R-ACC-6 / R-ADM-1: lock needs lock_apikey; revoke is the user's own act."""
    key, _ = services.create_api_key(UserFactory(), name="k")
    with pytest.raises(PermissionDenied):
        services.change_api_key_state(key, "lock", actor=cs_agent, reason="x")
    with pytest.raises(ValidationError):
        services.change_api_key_state(key, "revoke", actor=cs_agent, reason="x")
    with pytest.raises(type(key).DoesNotExist):
        services.revoke_api_key(cs_agent, key.pk)
    key.refresh_from_db()
    assert key.state == ApiKeyState.ACTIVE


# ---------------------------------------------------------------- agreements
def _draft(version="2027.1", days=10):
    return AgreementVersion.objects.create(
        version=version,
        title=f"Terms {version}",
        body="Our own words.",
        effective_at=timezone.now() + timedelta(days=days),
    )


def test_publish_notifies_every_user_once(risk_officer, settings):
    """R-ACC-7: publishing announces the version to every user (one notice each), each
    in the user's own language."""
    users = [UserFactory() for _ in range(5)]
    chinese = UserFactory(language="zh-hans")
    UserFactory(is_active=False)
    version = _draft()
    version = services.publish_agreement(version, actor=risk_officer, reason="yearly update")
    assert version.state == AgreementState.PUBLISHED
    assert version.published_by == risk_officer and version.published_at is not None
    users.append(chinese)
    english = Notice.objects.get(kind="agreement_published", user=users[0])
    assert Notice.objects.get(kind="agreement_published", user=chinese).subject != english.subject
    notices = Notice.objects.filter(kind="agreement_published")
    active = {u.pk for u in users} | {risk_officer.pk}
    assert set(notices.values_list("user_id", flat=True)) == active
    assert notices.count() == len(active)
    # A replay of the announcement creates nothing new (dedupe per user + version).
    services._announce_agreement(version, batch_size=2)
    assert notices.count() == len(active)


def test_publish_in_batches_covers_everyone():
    """R-ACC-7: bounded batches still reach every user."""
    users = [UserFactory() for _ in range(7)]
    version = _draft()
    services._announce_agreement(version, batch_size=3)
    assert Notice.objects.filter(kind="agreement_published").count() == len(users)


def test_publish_with_past_effective_date_is_refused(risk_officer):
    """R-ACC-7: the effective date must be in the future when published."""
    version = _draft(days=-1)
    with pytest.raises(ValidationError) as exc:
        services.publish_agreement(version, actor=risk_officer)
    assert exc.value.error_list[0].code == "effective_in_past"
    version.refresh_from_db()
    assert version.state == AgreementState.DRAFT
    assert not Notice.objects.exists()


def test_publish_needs_permission_and_a_draft(risk_officer, cs_agent):
    """R-ACC-7 / R-ADM-1: publish needs its permission; a published version stays put."""
    version = _draft()
    with pytest.raises(PermissionDenied):
        services.publish_agreement(version, actor=cs_agent)
    services.publish_agreement(version, actor=risk_officer)
    with pytest.raises(ValidationError):
        services.publish_agreement(version, actor=risk_officer)
    assert Notice.objects.filter(kind="agreement_published").count() == 2  # two users


def test_publish_button_in_admin(client, risk_officer):
    """R-ACC-7: staff publish from the admin change page."""
    version = _draft()
    client.force_login(risk_officer)
    page = client.get(f"/admin/accounts/agreementversion/{version.pk}/change/").content.decode()
    assert 'data-transition="publish"' in page
    client.post(
        f"/admin/accounts/agreementversion/{version.pk}/transition/publish/", {"reason": "v2"}
    )
    version.refresh_from_db()
    assert version.state == AgreementState.PUBLISHED


def test_version_in_force_at_any_instant():
    """R-ACC-7: in force at `at` = latest published with effective_at <= at."""
    now = timezone.now()

    def pub(v, at):
        return AgreementVersion.objects.create(
            version=v, title=v, body="b", effective_at=at, state=AgreementState.PUBLISHED
        )

    v1 = pub("1", now - timedelta(days=100))
    v2 = pub("2", now - timedelta(days=10))
    v3 = pub("3", now + timedelta(days=10))
    AgreementVersion.objects.create(
        version="draft", title="d", body="b", effective_at=now - timedelta(days=1)
    )
    assert selectors.agreement_in_force(now - timedelta(days=200)) is None
    assert selectors.agreement_in_force(now - timedelta(days=50)) == v1
    assert selectors.agreement_in_force(v2.effective_at) == v2
    assert selectors.agreement_in_force(now) == v2
    assert selectors.agreement_in_force(now + timedelta(days=11)) == v3
    assert selectors.upcoming_agreement(now) == v3


def test_current_acceptance_follows_the_version_in_force(user):
    """R-ACC-7: an acceptance of an older version does not count once a new one is in force."""
    now = timezone.now()
    old = AgreementVersion.objects.create(
        version="1",
        title="t",
        body="b",
        effective_at=now - timedelta(days=10),
        state=AgreementState.PUBLISHED,
    )
    new = AgreementVersion.objects.create(
        version="2",
        title="t",
        body="b",
        effective_at=now + timedelta(days=10),
        state=AgreementState.PUBLISHED,
    )
    accepted = services.accept_agreement(user, old, ip="10.0.0.1")
    assert selectors.current_acceptance(user) == accepted
    assert selectors.current_acceptance(user, at=now + timedelta(days=11)) is None
    services.accept_agreement(user, new, ip="10.0.0.1")
    assert selectors.current_acceptance(user, at=now + timedelta(days=11)).version == new


# ---------------------------------------------------------------- standing notice
def test_standing_change_and_its_notice_commit_or_roll_back_together():
    """R-ACC-8 / R-NOT-1: the user's notice is written in the standing change's own
    transaction: a failure after it rolls both back."""
    from django.db import transaction

    account = UserFactory().balance_account
    with pytest.raises(RuntimeError), transaction.atomic():
        services.change_standing(account, "lock", reason="dispute")
        assert Notice.objects.filter(user=account.user, kind="standing_changed").count() == 1
        raise RuntimeError("the caller fails after the change")
    account.refresh_from_db()
    assert account.standing == "active"
    assert not Notice.objects.filter(user=account.user, kind="standing_changed").exists()
    services.change_standing(account, "lock", reason="dispute")
    assert Notice.objects.filter(user=account.user, kind="standing_changed").count() == 1


def test_standing_buttons_work_for_view_only_staff_with_the_transition_permission(client):
    """R-ACC-8 / R-ADM-1: a CS agent (view + suspend) suspends from admin; freeze is hidden."""
    cs = grant(
        StaffFactory(),
        "accounts.view_balanceaccount",
        "accounts.suspend_balanceaccount",
        "core.view_auditrecord",
    )
    account = UserFactory().balance_account
    client.force_login(cs)
    page = client.get(f"/admin/accounts/balanceaccount/{account.pk}/change/").content.decode()
    assert 'data-transition="suspend"' in page and 'data-transition="freeze"' not in page
    client.post(
        f"/admin/accounts/balanceaccount/{account.pk}/transition/suspend/", {"reason": "spam"}
    )
    account.refresh_from_db()
    assert account.standing == "suspended"
    client.post(
        f"/admin/accounts/balanceaccount/{account.pk}/transition/freeze/",
        {"reason": "x", "authority": "Court", "document_number": "1"},
    )
    account.refresh_from_db()
    assert account.standing == "suspended"


def test_view_only_staff_cannot_delete_a_draft_agreement(client):
    """R-ADM-1 / R-ACC-7: deleting a draft version needs the delete permission."""
    from django.urls import reverse

    from accounts.models import AgreementVersion

    draft = AgreementVersion.objects.create(
        version="2099.1", title="Draft", body="Draft text", effective_at="2099-01-01T00:00:00Z"
    )
    viewer = grant(StaffFactory(), "accounts.view_agreementversion")
    client.force_login(viewer)
    url = reverse("admin:accounts_agreementversion_changelist")
    client.post(url, {"action": "delete_selected", "_selected_action": [draft.pk], "post": "yes"})
    assert AgreementVersion.objects.filter(pk=draft.pk).exists()


def test_admin_refuses_a_draft_whose_effective_date_has_passed(client):
    """R-ACC-7: a version is announced in advance: a draft with a past effective date is
    refused when saved (it could never be published), with a clear error."""
    from django.urls import reverse

    from accounts.models import AgreementVersion

    admin_user = StaffFactory(is_superuser=True)
    client.force_login(admin_user)
    url = reverse("admin:accounts_agreementversion_add")
    past = timezone.now() - timedelta(days=1)
    resp = client.post(
        url,
        {
            "version": "2020.1",
            "title": "Old",
            "body": "Text",
            "effective_at_0": past.strftime("%Y-%m-%d"),
            "effective_at_1": past.strftime("%H:%M:%S"),
            "AuditRecord-content_type-object_id-TOTAL_FORMS": "0",
            "AuditRecord-content_type-object_id-INITIAL_FORMS": "0",
            "core-auditrecord-content_type-object_id-TOTAL_FORMS": "0",
            "core-auditrecord-content_type-object_id-INITIAL_FORMS": "0",
        },
    )
    assert resp.status_code == 200
    assert "must be in the future" in resp.content.decode()
    assert not AgreementVersion.objects.filter(version="2020.1").exists()
