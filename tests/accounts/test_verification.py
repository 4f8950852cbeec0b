"""Real-name verification workflow (R-ACC-2), capacity (R-ACC-3), one identity (R-ACC-4)."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import selectors, services
from accounts.identity import identity_hash, make_credit_code, make_resident_id
from accounts.models import Verification, VerificationKind, VerificationState
from billing.models import Grant
from core.models import AuditRecord
from core.workflow import WorkflowError, perform_transition
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory

from .conftest import PNG, pdf_upload, submit_enterprise, submit_individual

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


def _error_code(exc):
    return exc.value.error_list[0].code


def test_individual_submission_derives_birth_date_and_waits_for_review(user):
    """R-ACC-2: draft → submitted; birth date from the ID number; audited."""
    number = make_resident_id(date(1990, 5, 17), sequence=321)
    v = submit_individual(user, id_number=number)
    assert v.state == VerificationState.SUBMITTED
    assert v.birth_date == date(1990, 5, 17)
    assert v.identity_hash == identity_hash("individual", number)
    assert v.submitted_at is not None
    audit = AuditRecord.objects.get(object_id=str(v.pk), action="submit")
    assert (audit.from_state, audit.to_state, audit.actor_id) == ("draft", "submitted", user.pk)


@pytest.mark.parametrize(
    ("id_number", "code"),
    [
        ("110105199005171234", "id_check_digit"),
        ("110105199902311233", "id_birth_date"),
        (make_resident_id(date(2099, 1, 1)), "id_future_birth_date"),
        ("1101051990", "id_length"),
    ],
)
def test_invalid_id_number_is_refused_and_nothing_stored(user, id_number, code):
    """R-ACC-2: bad check digit, impossible or future birth date: clear error, no row."""
    with pytest.raises(ValidationError) as exc:
        submit_individual(user, id_number=id_number)
    assert _error_code(exc) == code
    assert not Verification.objects.exists()
    assert not AuditRecord.objects.exists()


def test_enterprise_with_failing_check_character_goes_to_review_with_warning(user):
    """R-ACC-2: a credit code failing GB 32100 is accepted but flagged for manual review."""
    good = make_credit_code("91110108MA01ABCD1")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    v = submit_enterprise(user, code=bad)
    assert v.state == VerificationState.SUBMITTED
    assert v.check_digit_warning is True
    other = submit_enterprise(UserFactory(), code=make_credit_code("91310115MA1K4DEM0"))
    assert other.check_digit_warning is False


def test_enterprise_needs_licence_and_a_well_formed_code(user):
    """R-ACC-2: no licence, or a code with forbidden letters, is refused; nothing stored."""
    with pytest.raises(ValidationError):
        services.submit_verification(
            user,
            kind="enterprise",
            company_name="Acme",
            credit_code=make_credit_code(),
            legal_representative="Zhao",
        )
    with pytest.raises(ValidationError) as exc:
        submit_enterprise(user, code="91350100M000100I43")
    assert _error_code(exc) == "uscc_characters"
    assert not Verification.objects.exists()


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("licence.pdf", b"MZ\x90\x00 this is an exe", "file_type"),  # wrong content, pdf name
        ("licence.exe", b"%PDF-1.4 real pdf, wrong name", "file_type"),
        ("licence.png", b"%PDF-1.4 pdf content named png", "file_type"),
        ("licence.pdf", b"", "file_empty"),
    ],
)
def test_wrong_type_upload_is_refused(user, name, data, code):
    """R-ACC-5: only PDF/JPEG/PNG by magic bytes (and a matching name) are accepted."""
    with pytest.raises(ValidationError) as exc:
        submit_enterprise(user, licence=pdf_upload(name, data))
    assert _error_code(exc) == code
    assert not Verification.objects.exists()


def test_oversized_upload_is_refused(user, settings, tmp_path):
    """R-ACC-5: uploads above UPLOAD_MAX_BYTES are refused and nothing is stored."""
    settings.UPLOAD_MAX_BYTES = 1000
    with pytest.raises(ValidationError) as exc:
        submit_enterprise(user, licence=pdf_upload("big.pdf", b"%PDF-1.4" + b"0" * 1000))
    assert _error_code(exc) == "file_too_large"
    assert not Verification.objects.exists()
    assert not list((tmp_path / "media").rglob("*.enc"))
    v = submit_enterprise(user, licence=pdf_upload("small.png", PNG))
    assert v.licence_content_type == "image/png"


def test_approve_notifies_and_grants_the_trial(user, cs_agent):
    """R-ACC-2 / R-TOP-5: CS approves through the verification's transition map; the
    user gets a notice and the trial funds in the same step."""
    v = submit_individual(user)
    v = perform_transition(v, "approve", actor=cs_agent, reason="documents match")
    assert v.state == VerificationState.APPROVED
    assert v.reviewed_by == cs_agent
    notice = Notice.objects.get(user=user, kind="verification_approved")
    assert "approved" in notice.subject
    assert selectors.approved_verification(user) == v
    assert Grant.objects.filter(account=user.balance_account, kind="trial").count() == 1
    assert Notice.objects.filter(user=user, kind="trial_granted").count() == 1


def test_a_failing_trial_grant_rolls_the_approval_back(user, cs_agent, monkeypatch):
    """R-ACC-2 / R-TOP-5: the approval and the trial grant commit together or not at all."""
    import topups.services.trials

    def boom(verification, **kwargs):
        raise RuntimeError("grant failed")

    v = submit_individual(user)
    monkeypatch.setattr(topups.services.trials, "award_trial", boom)
    with pytest.raises(RuntimeError):
        perform_transition(v, "approve", actor=cs_agent, reason="ok")
    v.refresh_from_db()
    assert v.state == VerificationState.SUBMITTED
    assert not Notice.objects.exists()
    assert not Grant.objects.exists()


def test_reject_records_reason_notifies_and_allows_resubmission(user, cs_agent):
    """R-ACC-2: rejected with a reason; the user may resubmit as a new submission."""
    first = submit_individual(user)
    first = services.reject_verification(first, actor=cs_agent, reason="Photo unreadable")
    assert first.state == VerificationState.REJECTED
    assert first.rejection_reason == "Photo unreadable"
    notice = Notice.objects.get(user=user, kind="verification_rejected")
    assert "Photo unreadable" in notice.body
    second = submit_individual(user)
    assert second.pk != first.pk and second.state == VerificationState.SUBMITTED
    first.refresh_from_db()
    assert first.state == VerificationState.REJECTED


def test_reject_without_reason_is_refused(user, cs_agent):
    """R-ACC-2: a rejection needs a reason; nothing changes without one."""
    v = submit_individual(user)
    with pytest.raises(ValidationError):
        services.reject_verification(v, actor=cs_agent, reason="  ")
    v.refresh_from_db()
    assert v.state == VerificationState.SUBMITTED


def test_cannot_submit_while_one_is_pending_or_approved(user, cs_agent):
    """R-ACC-2: one open verification per user."""
    v = submit_individual(user)
    with pytest.raises(ValidationError) as exc:
        submit_individual(user)
    assert _error_code(exc) == "verification_open"
    services.approve_verification(v, actor=cs_agent, reason="ok")
    with pytest.raises(ValidationError):
        submit_individual(user)
    assert Verification.objects.filter(user=user).count() == 1


@pytest.mark.parametrize("name", ["approve", "reject", "revoke"])
def test_review_from_wrong_state_is_refused(user, cs_agent, risk_officer, name):
    """R-ACC-2: approving/rejecting a verification that is not submitted changes nothing."""
    v = submit_individual(user)
    services.approve_verification(v, actor=cs_agent, reason="ok")
    services.revoke_verification(v, actor=risk_officer, reason="forged")
    before = AuditRecord.objects.count()
    with pytest.raises(WorkflowError):
        perform_transition(v, name, actor=risk_officer, reason="again")
    v.refresh_from_db()
    assert v.state == VerificationState.REVOKED
    assert AuditRecord.objects.count() == before


def test_approving_a_draft_is_refused(user, cs_agent):
    """R-ACC-2: only a submitted verification can be approved."""
    v = Verification.objects.create(user=user, kind="individual", identity_hash="x")
    with pytest.raises(WorkflowError):
        services.approve_verification(v, actor=cs_agent, reason="ok")
    v.refresh_from_db()
    assert v.state == VerificationState.DRAFT


@pytest.mark.parametrize("name", ["approve", "reject", "revoke"])
def test_staff_without_permission_cannot_review(user, cs_agent, name):
    """R-ADM-1: each verification transition checks its own permission."""
    v = submit_individual(user)
    if name == "revoke":
        services.approve_verification(v, actor=cs_agent, reason="ok")  # CS cannot revoke
        actor = cs_agent
    else:
        actor = StaffFactory()
    state = Verification.objects.get(pk=v.pk).state
    with pytest.raises(PermissionDenied):
        perform_transition(v, name, actor=actor, reason="try")
    assert Verification.objects.get(pk=v.pk).state == state


def test_user_cannot_submit_someone_elses_draft(user):
    """R-ACC-2: only the owner submits their draft."""
    from core.workflow import apply_transition

    v = Verification.objects.create(user=user, kind="individual", identity_hash="x")
    with pytest.raises(PermissionDenied):
        apply_transition(v, "submit", actor=UserFactory())


# ---------------------------------------------------------------- R-ACC-4
def test_second_account_with_a_verified_identity_is_refused(cs_agent):
    """R-ACC-4: an ID number verified on one account cannot be submitted on another."""
    number = make_resident_id(date(1988, 8, 8), sequence=808)
    first_user, second_user = UserFactory(), UserFactory()
    first = submit_individual(first_user, id_number=number)
    services.approve_verification(first, actor=cs_agent, reason="ok")
    with pytest.raises(ValidationError) as exc:
        submit_individual(second_user, id_number=number.lower())
    assert _error_code(exc) == "identity_taken"
    assert not Verification.objects.filter(user=second_user).exists()


def test_second_approval_of_the_same_identity_is_refused(cs_agent):
    """R-ACC-4: two pending submissions of one identity: only the first approval passes."""
    number = make_resident_id(date(1988, 8, 8), sequence=809)
    a = submit_individual(UserFactory(), id_number=number)
    b = submit_individual(UserFactory(), id_number=number)
    services.approve_verification(a, actor=cs_agent, reason="ok")
    with pytest.raises(ValidationError) as exc:
        services.approve_verification(b, actor=cs_agent, reason="ok")
    assert _error_code(exc) == "identity_taken"
    b.refresh_from_db()
    assert b.state == VerificationState.SUBMITTED
    assert not Notice.objects.filter(user=b.user).exists()


def test_identity_limit_follows_the_setting_and_revocation_frees_it(
    settings, cs_agent, risk_officer
):
    """R-ACC-4: at most IDENTITY_MAX_ACCOUNTS approved accounts per identity."""
    settings.IDENTITY_MAX_ACCOUNTS = 2
    code = make_credit_code("91310115MA1K4DEM0")
    approved = [
        services.approve_verification(submit_enterprise(UserFactory(), code=code), actor=cs_agent)
        for _ in range(2)
    ]
    with pytest.raises(ValidationError):
        submit_enterprise(UserFactory(), code=code)
    services.revoke_verification(approved[0], actor=risk_officer, reason="closed")
    third = submit_enterprise(UserFactory(), code=code)
    assert third.state == VerificationState.SUBMITTED


# ---------------------------------------------------------------- R-ACC-3
def _approved_individual(user, cs_agent, birth):
    v = submit_individual(user, birth=birth)
    return services.approve_verification(v, actor=cs_agent, reason="ok")


def test_capacity_starts_on_the_eighteenth_birthday(user, cs_agent):
    """R-ACC-3: an individual under 18 at `at` has no full capacity; 18 and over has."""
    _approved_individual(user, cs_agent, date(2008, 3, 15))
    assert services.has_full_capacity(user, at=date(2026, 3, 14)) is False
    assert services.has_full_capacity(user, at=date(2026, 3, 15)) is True
    # Local midnight in Shanghai counts, not UTC.
    eve = datetime(2026, 3, 14, 23, 30, tzinfo=SH)
    assert services.has_full_capacity(user, at=eve) is False
    assert services.has_full_capacity(user, at=datetime(2026, 3, 15, 0, 5, tzinfo=SH)) is True


def test_leap_day_birthday_turns_18_on_first_of_march(user, cs_agent):
    """R-ACC-3: born 29 February: of age on 1 March in a common year."""
    _approved_individual(user, cs_agent, date(2008, 2, 29))
    assert services.has_full_capacity(user, at=date(2026, 2, 28)) is False
    assert services.has_full_capacity(user, at=date(2026, 3, 1)) is True


def test_no_capacity_without_approved_verification(user, cs_agent):
    """R-ACC-3: capacity is not established before an approved verification."""
    assert services.has_full_capacity(user) is False
    submit_individual(user, birth=date(1980, 1, 1))
    assert services.has_full_capacity(user) is False


def test_enterprise_has_capacity(user, cs_agent):
    """R-ACC-3: an approved enterprise has full capacity."""
    services.approve_verification(submit_enterprise(user), actor=cs_agent)
    assert services.has_full_capacity(user) is True


def test_own_income_exception_for_16_to_18(user, cs_agent):
    """R-ACC-3: staff record the 16-18 own-income exception with evidence; audited."""
    v = _approved_individual(user, cs_agent, date(2009, 6, 1))
    today = date(2026, 1, 10)  # aged 16
    assert services.has_full_capacity(user, at=today) is False
    services.record_capacity_exception(
        v, actor=cs_agent, note="Employment contract", evidence_file=pdf_upload(), today=today
    )
    assert services.has_full_capacity(user, at=today) is True
    assert services.has_full_capacity(user, at=date(2025, 5, 31)) is False  # 15 then
    audit = AuditRecord.objects.get(object_id=str(v.pk), action="record_capacity_exception")
    assert audit.actor == cs_agent


def test_exception_refused_outside_16_to_18_or_without_permission(cs_agent):
    """R-ACC-3: not for a 15-year-old; not by staff without the permission; nothing changes."""
    young = _approved_individual(UserFactory(), cs_agent, date(2010, 6, 1))
    with pytest.raises(ValidationError) as exc:
        services.record_capacity_exception(
            young, actor=cs_agent, note="job", evidence_file=pdf_upload(), today=date(2026, 1, 1)
        )
    assert _error_code(exc) == "not_applicable"
    v = _approved_individual(UserFactory(), cs_agent, date(2009, 6, 1))
    with pytest.raises(PermissionDenied):
        services.record_capacity_exception(
            v, actor=StaffFactory(), note="job", evidence_file=pdf_upload()
        )
    with pytest.raises(ValidationError) as exc:
        services.record_capacity_exception(
            v, actor=cs_agent, note="job", evidence_file=pdf_upload("x.pdf", b"GIF89a")
        )
    assert _error_code(exc) == "file_type"
    assert not Verification.objects.filter(capacity_exception_at__isnull=False).exists()


def test_verification_kinds_are_the_contract_values():
    """Contract: kind is "individual" | "enterprise"."""
    assert {VerificationKind.INDIVIDUAL, VerificationKind.ENTERPRISE} == {
        "individual",
        "enterprise",
    }


def test_users_with_identity_lists_every_account_ever_approved(settings, cs_agent, risk_officer):
    """R-ACC-4: trial-once support: all accounts an identity was ever verified on."""
    settings.IDENTITY_MAX_ACCOUNTS = 2
    number = make_resident_id(date(1977, 7, 7), sequence=707)
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    va = services.approve_verification(submit_individual(a, id_number=number), actor=cs_agent)
    services.revoke_verification(va, actor=risk_officer, reason="closed")
    services.approve_verification(submit_individual(b, id_number=number), actor=cs_agent)
    submit_individual(c, id_number=number)  # pending: not counted
    assert selectors.users_with_identity(va.identity_hash) == sorted([a.pk, b.pk])
