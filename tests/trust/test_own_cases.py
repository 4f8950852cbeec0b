"""R-ADM-4: staff never act on their own cases (verification, grants, refunds).

Each refusal comes from the service, so an admin button, a view or a script is
refused alike, and nothing changes.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import VerificationState
from billing.models import Grant
from core.models import AuditRecord
from refunds.models import RefundState
from refunds.services.decisions import approve_refund, reject_refund, take_for_review
from refunds.services.filing import submit_refund
from tests.factories import StaffFactory, cny, grant
from tests.refunds.conftest import CS_PERMS, FINANCE_PERMS, bank_topup, proof
from tests.topups.conftest import accept, make_agreement, submit, verify
from topups.services.trials import approve_verification, change_grant_validity

pytestmark = pytest.mark.django_db


def _cs():
    return grant(StaffFactory(), "accounts.review_verification", "accounts.revoke_verification")


def test_staff_cannot_approve_their_own_verification():
    """R-ADM-4: a CS agent's own verification is refused by the approval service; another
    agent approves it."""
    agent = _cs()
    verification = submit(agent)
    with pytest.raises(ValidationError) as err:
        approve_verification(verification, actor=agent, reason="looks fine")
    assert err.value.code == "own_case"
    verification.refresh_from_db()
    assert verification.state == VerificationState.SUBMITTED
    assert not Grant.objects.filter(account__user=agent, kind="trial").exists()
    approve_verification(verification, actor=_cs(), reason="documents match")
    verification.refresh_from_db()
    assert verification.state == VerificationState.APPROVED


def test_staff_cannot_reject_or_revoke_their_own_verification():
    """R-ADM-4: rejecting or revoking one's own verification is refused too."""
    from topups.services.trials import reject_verification, revoke_verification

    agent = _cs()
    pending = submit(agent)
    with pytest.raises(ValidationError):
        reject_verification(pending, actor=agent, reason="redo")
    approve_verification(pending, actor=_cs(), reason="ok")
    with pytest.raises(ValidationError):
        revoke_verification(pending, actor=agent, reason="mine")
    pending.refresh_from_db()
    assert pending.state == VerificationState.APPROVED


def _trial_grant(user):
    from billing.services.ledger import grant_funds

    return grant_funds(
        user.balance_account,
        cny("20.00"),
        kind="trial",
        expires_at=timezone.now() + timedelta(days=5),
        idempotency_key=f"trust-trial:{user.pk}",
    )


def test_staff_cannot_extend_their_own_grant():
    """R-ADM-4: extending one's own grant is refused (ledger service), the expiry stays;
    a colleague's change is audited with old value, new value and reason (R-ADM-5)."""
    staff = grant(StaffFactory(), "topups.change_grant_validity")
    mine = _trial_grant(staff)
    before = mine.expires_at
    with pytest.raises(ValidationError) as err:
        change_grant_validity(
            mine, timezone.now() + timedelta(days=365), actor=staff, reason="for me"
        )
    assert err.value.code == "own_case"
    mine.refresh_from_db()
    assert mine.expires_at == before
    assert not AuditRecord.objects.filter(action="change_validity").exists()

    colleague = grant(StaffFactory(), "topups.change_grant_validity")
    new = timezone.now() + timedelta(days=30)
    change_grant_validity(mine, new, actor=colleague, reason="goodwill")
    audit = AuditRecord.objects.get(action="change_validity")
    assert audit.actor == colleague and audit.reason == "goodwill"
    assert audit.details["old_expires_at"] == before.isoformat()
    assert audit.details["new_expires_at"] == new.isoformat()


def test_ledger_refuses_own_grant_whoever_calls():
    """R-ADM-4: the refusal lives in billing.services.ledger.set_grant_expiry itself."""
    from billing.services.ledger import set_grant_expiry

    staff = StaffFactory()
    mine = _trial_grant(staff)
    with pytest.raises(ValidationError):
        set_grant_expiry(mine, timezone.now() + timedelta(days=90), actor=staff, reason="x")


@pytest.fixture
def staff_customer():
    """A staff member with CS and finance refund permissions who is also a customer with a
    paid top-up."""
    staff = grant(StaffFactory(), *CS_PERMS, *FINANCE_PERMS)
    verify(staff)
    accept(staff, make_agreement())
    clerk = grant(StaffFactory(), "topups.confirm_remittance", "topups.view_topup")
    bank_topup(staff, "100.00", clerk)
    return staff


def test_staff_cannot_review_or_approve_their_own_refund(staff_customer):
    """R-ADM-4: taking one's own refund for review, approving or rejecting it are refused;
    two colleagues decide it."""
    me = staff_customer
    request = submit_refund(me, proofs=[proof()])
    with pytest.raises(ValidationError) as err:
        take_for_review(request, actor=me, reason="mine")
    assert err.value.code == "own_case"
    request.refresh_from_db()
    assert request.state == RefundState.SUBMITTED

    cs = grant(StaffFactory(), *CS_PERMS)
    take_for_review(request, actor=cs)
    with pytest.raises(ValidationError):
        approve_refund(request, actor=me, reason="fine")
    with pytest.raises(ValidationError):
        reject_refund(request, actor=me, reason="no")
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW
    approve_refund(request, actor=grant(StaffFactory(), *FINANCE_PERMS), reason="fine")
    request.refresh_from_db()
    assert request.state == RefundState.APPROVED


def test_staff_cannot_pay_out_their_own_refund(staff_customer):
    """R-ADM-4: starting the payout of one's own refund or recording its bank transfer are
    refused; a colleague pays it."""
    from datetime import date

    from refunds.services.payouts import record_transfer, start_payout

    me = staff_customer
    request = submit_refund(me, proofs=[proof()])
    take_for_review(request, actor=grant(StaffFactory(), *CS_PERMS))
    approve_refund(request, actor=grant(StaffFactory(), *FINANCE_PERMS), reason="fine")
    with pytest.raises(ValidationError) as err:
        start_payout(request, actor=me)
    assert err.value.code == "own_case"
    colleague = grant(StaffFactory(), *FINANCE_PERMS)
    start_payout(request, actor=colleague)
    with pytest.raises(ValidationError) as err:
        record_transfer(request, actor=me, bank_reference="B-1", transferred_on=date.today())
    assert err.value.code == "own_case"
    record_transfer(request, actor=colleague, bank_reference="B-1", transferred_on=date.today())
    request.refresh_from_db()
    assert request.state == RefundState.PAID


def test_staff_cannot_change_the_standing_of_their_own_account():
    """R-ADM-4: a risk officer cannot unfreeze (or otherwise move) their own account;
    a colleague can."""
    from accounts.services import change_standing

    perms = ("accounts.freeze_balanceaccount", "accounts.suspend_balanceaccount")
    officer, colleague = grant(StaffFactory(), *perms), grant(StaffFactory(), *perms)
    account = officer.balance_account
    change_standing(
        account, "freeze", actor=colleague, reason="order", authority="Court", document_number="1"
    )
    with pytest.raises(ValidationError) as err:
        change_standing(account, "unfreeze", actor=officer, reason="mine")
    assert err.value.code == "own_case"
    account.refresh_from_db()
    assert account.standing == "frozen"
    change_standing(account, "unfreeze", actor=colleague, reason="order lifted")
    account.refresh_from_db()
    assert account.standing == "active"


def test_staff_cannot_unlock_their_own_api_key():
    """R-ADM-4: a risk officer cannot unlock a key of their own that the platform locked."""
    from accounts.models import ApiKey
    from accounts.services import create_api_key, lock_api_key, unlock_api_key

    officer, colleague = (grant(StaffFactory(), "accounts.lock_apikey") for _ in range(2))
    key, _raw = create_api_key(officer, name="mine")
    lock_api_key(key, actor=colleague, reason="abuse")
    with pytest.raises(ValidationError):
        unlock_api_key(key, actor=officer, reason="fine")
    assert ApiKey.objects.get(pk=key.pk).state == "locked"


def test_staff_cannot_record_their_own_capacity_exception(tmp_path):
    """R-ADM-4: the 16-18 own-income exception is never recorded by the person it frees."""
    from datetime import date

    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.services import record_capacity_exception
    from tests.topups.conftest import PDF

    staff = grant(StaffFactory(), "accounts.record_capacity_exception")
    today = date.today()
    verification = verify(staff, birth_date=date(today.year - 17, 1, 1))
    with pytest.raises(ValidationError) as err:
        record_capacity_exception(
            verification,
            actor=staff,
            note="salary slips",
            evidence_file=SimpleUploadedFile("e.pdf", PDF, content_type="application/pdf"),
        )
    assert err.value.code == "own_case"
    verification.refresh_from_db()
    assert not verification.has_capacity_exception
