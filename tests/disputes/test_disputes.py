"""Disputes: every R-DIS rule with a controlled clock (passed as `now=`), the D-style
cases and the bad inputs of issue 11."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.api_keys import new_key_material
from accounts.models import ApiKey, ApiKeyState, Standing
from accounts.services import change_standing, create_api_key
from billing.models import AccountKind, LedgerAccount, Posting, TxnKind
from billing.services.dispute_funds import debt_micro
from billing.services.ledger import credit_lot
from core.workflow import WorkflowError
from disputes.models import (
    DebtCollection,
    Dispute,
    DisputeState,
    FileKind,
    PayoutState,
    RightsHolderPayout,
)
from disputes.services import deadline as clockwork
from disputes.services.decisions import (
    accept_evidence,
    record_direct_repayment,
    reject_evidence,
    waive_debt,
    withdraw,
)
from disputes.services.opening import add_debt_proof, add_evidence, read_file
from disputes.services.payouts import record_transfer, settle_dispute_payouts
from notices.models import Notice
from tests.factories import UserFactory, cny
from tests.ledger.http import TOKEN, post

from .conftest import (
    RefundAnswer,
    after_deadline,
    assert_books_balance,
    bank_topup,
    consume,
    discount_for,
    evidence,
    money,
    open_for,
    run_deadline,
    third_party_alipay_topup,
    third_party_bank_topup,
    trial_for,
)

pytestmark = pytest.mark.django_db
SH = zoneinfo.ZoneInfo("Asia/Shanghai")


def platform(kind, channel=""):
    return sum(
        Posting.objects.filter(
            ledger_account__owner__isnull=True,
            ledger_account__kind=kind,
            ledger_account__channel=channel,
        ).values_list("amount_micro", flat=True)
    )


def notices(user, kind):
    return list(Notice.objects.filter(user=user, kind=kind).order_by("id"))


# --------------------------------------------------------------------- R-DIS-1 opening


def test_opening_locks_account_and_every_key_and_sets_the_deadline(ready_user, clerk, cs, clock):
    """R-DIS-1: opening locks the balance account and every API key in the same
    transaction, sets the deadline to the end of the 30th day after opening in
    Asia/Shanghai, and tells the user with the deadline."""
    k1, _ = create_api_key(ready_user, name="a")
    k2, _ = create_api_key(ready_user, name="b")
    topup = third_party_bank_topup(ready_user, "100.00", clerk)
    opened = datetime.datetime(2026, 3, 1, 23, 30, tzinfo=SH)  # 15:30 UTC
    dispute = open_for([topup], cs, "100.00", now=opened)
    account = ready_user.balance_account
    account.refresh_from_db()
    assert account.standing == Standing.LOCKED
    k1.refresh_from_db()
    k2.refresh_from_db()
    assert k1.state == k2.state == ApiKeyState.LOCKED
    assert sorted(dispute.locked_key_ids) == sorted([k1.pk, k2.pk])
    assert dispute.deadline_at == datetime.datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=SH)
    (notice,) = notices(ready_user, "dispute_opened")
    assert "2026-03-31 23:59" in notice.body
    assert dispute.state == DisputeState.OPEN and dispute.disputed.amount == Decimal("100")


def test_deadline_counts_shanghai_days_not_utc(ready_user, clerk, cs):
    """R-DIS-1: 00:30 in Shanghai is still the previous day in UTC; the deadline counts
    30 days from the Shanghai date."""
    topup = third_party_bank_topup(ready_user, "10.00", clerk)
    opened = datetime.datetime(2026, 5, 10, 0, 30, tzinfo=SH)  # 2026-05-09 16:30 UTC
    dispute = open_for([topup], cs, "10.00", now=opened)
    assert dispute.deadline_at.astimezone(SH).date() == datetime.date(2026, 6, 9)


def test_locked_account_is_refused_by_authorization_and_the_gateway(
    ready_user, clerk, cs, client, settings
):
    """R-DIS-1: from the opening's commit the gateway refuses the account's key with
    `key_locked` (the key) and a key left active (made before issue 22 refused new keys
    of a locked account) with `account_locked`; no new key is made; usage moves
    nothing."""
    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    key, raw = create_api_key(ready_user, name="k")
    topup = third_party_bank_topup(ready_user, "50.00", clerk)
    status, body = post(client, "authorize", {"api_key": raw})
    assert (status, body["allowed"]) == (200, True)
    open_for([topup], cs, "50.00")
    status, body = post(client, "authorize", {"api_key": raw})
    assert (body["allowed"], body["code"]) == (False, "key_locked")
    with pytest.raises(ValidationError) as refused:
        create_api_key(ready_user, name="after")
    assert refused.value.code == "account_locked"
    raw2, prefix, secret_hash = new_key_material()
    ApiKey.objects.create(
        account=ready_user.balance_account, name="old", prefix=prefix, secret_hash=secret_hash
    )
    status, body = post(client, "authorize", {"api_key": raw2})
    assert (body["allowed"], body["code"]) == (False, "account_locked")
    before = Posting.objects.count()
    status, body = post(
        client, "usage", {"request_id": "x1", "api_key": raw2, "model": "m", "amount": "1"}
    )
    assert status == 403 and body["code"] == "account_locked"
    assert Posting.objects.count() == before


@pytest.mark.parametrize(
    "amount,code",
    [
        ("100.01", "above_cash"),
        ("0", "non_positive_amount"),
        ("-5", "non_positive_amount"),
        ("1.001", "too_many_decimals"),
        ("abc", "invalid_amount"),
    ],
)
def test_bad_amounts_are_refused_and_change_nothing(ready_user, clerk, cs, amount, code):
    """R-DIS-1: the disputed amount is CNY, whole fen, > 0 and at most the disputed lots'
    cash; a refusal opens nothing and locks nothing."""
    topup = third_party_bank_topup(ready_user, "100.00", clerk)
    with pytest.raises(ValidationError) as exc:
        open_for([topup], cs, amount)
    assert exc.value.code == code
    assert not Dispute.objects.exists()
    ready_user.balance_account.refresh_from_db()
    assert ready_user.balance_account.standing == Standing.ACTIVE


def test_wrong_currency_is_refused(ready_user, clerk, cs):
    """R-DIS-1: only CNY."""
    from djmoney.money import Money

    topup = third_party_bank_topup(ready_user, "100.00", clerk)
    with pytest.raises(ValidationError) as exc:
        open_for([topup], cs, Money("10", "USD"))
    assert exc.value.code == "wrong_currency"
    assert not Dispute.objects.exists()


def test_unpaid_or_own_top_ups_cannot_be_disputed(ready_user, clerk, cs):
    """R-DIS-1: a dispute is only on paid third-party top-ups."""
    from topups.services.orders import start_topup

    unpaid = start_topup(ready_user, "20.00", channel="bank")
    with pytest.raises(ValidationError) as exc:
        open_for([unpaid], cs, "20.00")
    assert exc.value.code == "not_paid"
    own = bank_topup(ready_user, "20.00", clerk)  # paid by the verified holder
    assert not own.third_party
    with pytest.raises(ValidationError) as exc:
        open_for([own], cs, "20.00")
    assert exc.value.code == "not_third_party"
    assert not Dispute.objects.exists()


def test_top_ups_of_two_accounts_or_twice_disputed_are_refused(ready_user, clerk, cs):
    """R-DIS-1: one account per dispute; a top-up in an open dispute is not disputed again;
    without the permission nobody opens one."""
    from accounts.models import AgreementVersion
    from tests.topups.conftest import accept, verify

    other = UserFactory(phone="")
    verify(other)
    accept(other, AgreementVersion.objects.get())
    mine = third_party_bank_topup(ready_user, "20.00", clerk)
    theirs = third_party_bank_topup(other, "20.00", clerk)
    with pytest.raises(ValidationError) as exc:
        open_for([mine, theirs], cs, "20.00")
    assert exc.value.code == "several_accounts"
    open_for([mine], cs, "20.00")
    with pytest.raises(ValidationError) as exc:
        open_for([mine], cs, "10.00")
    assert exc.value.code == "already_disputed"
    with pytest.raises(PermissionDenied):
        open_for([theirs], UserFactory(), "10.00")
    assert Dispute.objects.count() == 1


# --------------------------------------------------------------------- R-DIS-2 evidence


def test_accepted_evidence_clears_and_unlocks(ready_user, clerk, cs, risk):
    """R-DIS-2: the user uploads evidence; a risk officer accepts it: cleared, the account
    and its keys unlocked, the user told; the file is encrypted at rest."""
    key, _ = create_api_key(ready_user, name="k")
    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    dispute = open_for([topup], cs, "30.00")
    row = add_evidence(dispute, evidence(), actor=ready_user)
    with open(row.file.path, "rb") as fh:
        assert b"%PDF" not in fh.read()  # encrypted on disk
    accept_evidence(dispute, actor=risk, reason="signed authorisation")
    dispute.refresh_from_db()
    key.refresh_from_db()
    ready_user.balance_account.refresh_from_db()
    assert dispute.state == DisputeState.CLEARED
    assert ready_user.balance_account.standing == Standing.ACTIVE
    assert key.state == ApiKeyState.ACTIVE
    assert notices(ready_user, "dispute_cleared")
    assert money(ready_user.balance_account)["cash"] == Decimal("30")


def test_rejected_evidence_keeps_the_dispute_open_with_its_deadline(ready_user, clerk, cs, risk):
    """R-DIS-2: a rejection needs a reason, is told to the user, and keeps the dispute
    open with the same deadline and the locks."""
    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    dispute = open_for([topup], cs, "30.00")
    deadline = dispute.deadline_at
    add_evidence(dispute, evidence(), actor=ready_user)
    with pytest.raises(ValidationError):
        reject_evidence(dispute, actor=risk, reason="")
    reject_evidence(dispute, actor=risk, reason="The signature does not match the holder.")
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN and dispute.deadline_at == deadline
    assert dispute.evidence_rejection.startswith("The signature")
    assert "signature" in notices(ready_user, "dispute_evidence_rejected")[0].body
    ready_user.balance_account.refresh_from_db()
    assert ready_user.balance_account.standing == Standing.LOCKED


def test_evidence_on_a_cleared_dispute_is_refused(ready_user, clerk, cs, risk):
    """R-DIS-2: accepting evidence of a cleared dispute is a wrong-state refusal; so is
    uploading more; CS without the review permission cannot accept."""
    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    dispute = open_for([topup], cs, "30.00")
    add_evidence(dispute, evidence(), actor=ready_user)
    with pytest.raises(PermissionDenied):
        accept_evidence(dispute, actor=cs)
    accept_evidence(dispute, actor=risk)
    with pytest.raises(WorkflowError) as exc:
        accept_evidence(dispute, actor=risk)
    assert exc.value.code == "wrong_state"
    with pytest.raises(WorkflowError):
        add_evidence(dispute, evidence(), actor=ready_user)


def test_accept_without_evidence_is_refused(ready_user, clerk, cs, risk):
    """R-DIS-2: nothing to accept without an evidence file."""
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    with pytest.raises(WorkflowError) as exc:
        accept_evidence(dispute, actor=risk)
    assert exc.value.code == "no_evidence"


@pytest.mark.parametrize(
    "name,data,code",
    [
        ("consent.pdf", b"MZ\x90\x00not a pdf", "file_type"),
        ("consent.png", b"%PDF-1.4 named png", "file_type"),
        ("consent.pdf", b"", "file_empty"),
    ],
)
def test_bad_evidence_files_are_refused(ready_user, clerk, cs, name, data, code):
    """R-DIS-2: evidence files are checked by content, not name or claimed type."""
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    with pytest.raises(ValidationError) as exc:
        add_evidence(dispute, SimpleUploadedFile(name, data), actor=ready_user)
    assert exc.value.code == code
    assert not dispute.files.exists()


def test_oversized_evidence_is_refused(ready_user, clerk, cs, settings):
    """R-DIS-2: evidence over UPLOAD_MAX_BYTES is refused."""
    settings.UPLOAD_MAX_BYTES = 100
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    with pytest.raises(ValidationError) as exc:
        add_evidence(dispute, evidence(data=b"%PDF-" + b"x" * 200), actor=ready_user)
    assert exc.value.code == "file_too_large"


def test_another_user_cannot_add_evidence_and_staff_need_the_permission(
    ready_user, clerk, cs, risk
):
    """R-DIS-2: another user may not add evidence; opening a file needs
    disputes.view_dispute_file and each view is audited."""
    from core.selectors import history_of

    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    with pytest.raises(PermissionDenied):
        add_evidence(dispute, evidence(), actor=UserFactory())
    row = add_evidence(dispute, evidence(), actor=ready_user)
    with pytest.raises(PermissionDenied):
        read_file(row, actor=UserFactory(is_staff=True))
    assert read_file(row, actor=risk).startswith(b"%PDF")
    assert [h.action for h in history_of(dispute)].count("view_file") == 1


def test_withdrawal_clears(ready_user, clerk, cs):
    """R-DIS-2: CS records that the rights holder withdrew: cleared and unlocked."""
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    with pytest.raises(ValidationError):
        withdraw(dispute, actor=cs, reason=" ")
    withdraw(dispute, actor=cs, reason="email of 3 March from the rights holder")
    dispute.refresh_from_db()
    ready_user.balance_account.refresh_from_db()
    assert dispute.state == DisputeState.CLEARED
    assert ready_user.balance_account.standing == Standing.ACTIVE


# --------------------------------------------------------------------- R-DIS-3 the deadline


def test_deadline_refunds_cash_only_and_makes_the_shortfall_a_debt(ready_user, clerk, cs):
    """R-DIS-3 (D-style: consumed part before the lock, has trial and discount funds):
    at the deadline the disputed amount comes from cash only; trial and discount stay;
    the shortfall is a debt due 30 days after the deadline (end of day, Shanghai); the
    books balance."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "100.00", clerk)
    trial_for(account, "20.00")
    discount_for(topup, "10.00")
    consume(account, "70.00")  # trial 20 + discount 10 first, then 40 of cash
    assert money(account)["cash"] == Decimal("60")
    trial_for(account, "5.00")
    discount_for(topup, "3.00")
    dispute = open_for([topup], cs, "100.00")
    assert run_deadline(dispute.deadline_at) == 0  # not yet: the deadline is inclusive
    moved = run_deadline(after_deadline(dispute))
    assert moved == 1
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.IN_DEBT
    assert dispute.refunded.amount == Decimal("60") and dispute.debt.amount == Decimal("40")
    assert dispute.debt_due_at.astimezone(SH).date() == (
        dispute.deadline_at.astimezone(SH).date() + datetime.timedelta(days=30)
    )
    after = money(account)
    assert after["cash"] == 0 and after["trial"] == Decimal("5") and after["discount"] == 3
    assert debt_micro(account.pk) == 40_000_000
    assert platform(AccountKind.RIGHTS_HOLDER_PAYABLE) == 60_000_000
    assert platform(AccountKind.DISPUTE_CLAIMS) == 40_000_000
    (payout,) = RightsHolderPayout.objects.filter(dispute=dispute)
    assert payout.state == PayoutState.PENDING and payout.amount_micro == 60_000_000
    account.refresh_from_db()
    assert account.standing == Standing.LOCKED  # stays locked until the money is settled
    body = notices(ready_user, "dispute_refunded")[0].body
    assert "40.00" in body and "60.00" in body
    assert_books_balance()


def test_deadline_with_enough_cash_settles_and_unlocks(ready_user, clerk, cs):
    """R-DIS-3: enough cash: the whole amount is refunded, no debt, settled, unlocked;
    the other lots' cash is used after the disputed lot's."""
    account = ready_user.balance_account
    own = bank_topup(ready_user, "50.00", clerk)
    topup = third_party_bank_topup(ready_user, "40.00", clerk)
    consume(account, "30.00")  # from the oldest lot first (own)
    dispute = open_for([topup], cs, "40.00")
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    account.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED and dispute.debt_micro == 0
    assert account.standing == Standing.ACTIVE
    topup.lot.refresh_from_db()
    own.lot.refresh_from_db()
    assert topup.lot.remaining_micro == 0 and own.lot.remaining_micro == 20_000_000
    assert_books_balance()


def test_evidence_accepted_one_day_before_the_deadline_leaves_the_job_nothing(
    ready_user, clerk, cs, risk
):
    """R-DIS-3: evidence accepted the day before the deadline: the deadline job does
    nothing (no refund, no debt, no payout), the cash stays."""
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    add_evidence(dispute, evidence(), actor=ready_user)
    accept_evidence(dispute, actor=risk)
    assert run_deadline(after_deadline(dispute, seconds=86400)) == 0
    assert not Posting.objects.filter(transaction__kind=TxnKind.DISPUTE_REFUND).exists()
    assert not RightsHolderPayout.objects.exists()
    assert money(ready_user.balance_account)["cash"] == Decimal("30")


def test_alipay_trade_is_refunded_through_alipay_with_its_own_request_number(
    ready_user, cs, alipay
):
    """R-DIS-3: an Alipay top-up's refund goes back through Alipay with the payout's own
    out_request_no; once Alipay says the money moved, payable → Alipay clearing."""
    topup = third_party_alipay_topup(ready_user, "25.00")
    dispute = open_for([topup], cs, "25.00")
    run_deadline(after_deadline(dispute))
    (payout,) = RightsHolderPayout.objects.filter(dispute=dispute)
    assert payout.state == PayoutState.PAID and payout.channel == "alipay"
    assert alipay.calls == [("refund", payout.out_request_no, cny("25.00"))]
    assert payout.out_request_no.startswith(f"DSP{dispute.pk}")
    assert platform(AccountKind.RIGHTS_HOLDER_PAYABLE) == 0
    assert_books_balance()


def test_alipay_with_no_answer_is_settled_later_with_the_same_request_number(
    ready_user, cs, alipay
):
    """R-DIS-4: no answer from Alipay leaves the payout unknown; the settle job asks, and
    sends again with the SAME out_request_no; the money is booked once."""
    topup = third_party_alipay_topup(ready_user, "25.00")
    dispute = open_for([topup], cs, "25.00")
    alipay.refund_script = [alipay.AlipayUnavailable("timeout")]
    run_deadline(after_deadline(dispute))
    payout = RightsHolderPayout.objects.get(dispute=dispute)
    assert payout.state == PayoutState.UNKNOWN
    later = after_deadline(dispute, seconds=600)
    settle_dispute_payouts(later)
    payout.refresh_from_db()
    assert payout.state == PayoutState.PAID
    numbers = {c[1] for c in alipay.calls if c[0] == "refund"}
    assert numbers == {payout.out_request_no}
    assert Posting.objects.filter(transaction__kind=TxnKind.DISPUTE_PAYOUT).count() == 2
    settle_dispute_payouts(later + datetime.timedelta(hours=1))
    assert Posting.objects.filter(transaction__kind=TxnKind.DISPUTE_PAYOUT).count() == 2


@pytest.mark.parametrize(
    "code, sub_code", [("40004", "ACQ.SYSTEM_ERROR"), ("20000", "isp.unknow-error")]
)
def test_alipay_system_error_is_retried_not_left_to_the_bank(
    ready_user, cs, alipay, code, sub_code
):
    """R-DIS-4: ACQ.SYSTEM_ERROR and 20000 are no refusal (the refund may have been made;
    the loop refund payouts share, topups.alipay_payouts): the payout is unknown, not
    failed to a bank transfer; the settle job sends it again with the same number."""
    topup = third_party_alipay_topup(ready_user, "25.00")
    dispute = open_for([topup], cs, "25.00")
    alipay.refund_script = [RefundAnswer(False, False, code=code, sub_code=sub_code)]
    run_deadline(after_deadline(dispute))
    payout = RightsHolderPayout.objects.get(dispute=dispute)
    assert payout.state == PayoutState.UNKNOWN and not payout.failure_reason
    settle_dispute_payouts(after_deadline(dispute, seconds=600))
    payout.refresh_from_db()
    assert payout.state == PayoutState.PAID and payout.attempts == 2
    assert {c[1] for c in alipay.calls if c[0] == "refund"} == {payout.out_request_no}
    assert_books_balance()


def test_alipay_refusal_goes_to_finance_bank_transfer(ready_user, cs, alipay, finance):
    """R-DIS-3: Alipay refusing for good leaves the payout to finance, who records a bank
    transfer (reference and date required); paid once."""
    topup = third_party_alipay_topup(ready_user, "25.00")
    dispute = open_for([topup], cs, "25.00")
    alipay.refund_script = [
        RefundAnswer(False, False, code="40004", sub_code="ACQ.TRADE_HAS_FINISHED")
    ]
    run_deadline(after_deadline(dispute))
    payout = RightsHolderPayout.objects.get(dispute=dispute)
    assert payout.state == PayoutState.FAILED
    with pytest.raises(ValidationError):
        record_transfer(payout, actor=finance, bank_reference="", transferred_on=None)
    record_transfer(
        payout, actor=finance, bank_reference="B-77", transferred_on=datetime.date(2026, 4, 2)
    )
    payout.refresh_from_db()
    assert payout.state == PayoutState.PAID and payout.reference == "B-77"
    with pytest.raises(WorkflowError):
        record_transfer(
            payout, actor=finance, bank_reference="B-78", transferred_on=datetime.date.today()
        )
    assert platform(AccountKind.RIGHTS_HOLDER_PAYABLE) == 0
    assert platform(AccountKind.CLEARING, "bank") == 25_000_000
    assert_books_balance()


def test_top_up_during_the_dispute_credits_and_is_used_at_the_deadline(ready_user, clerk, cs):
    """R-DIS-3 (D-style: tops up during the dispute): a locked account's own top-up still
    credits; at the deadline its cash counts too, so no debt arises."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "50.00", clerk)
    consume(account, "50.00")
    dispute = open_for([topup], cs, "50.00")
    bank_topup(ready_user, "80.00", clerk)  # during the lock: credited
    assert money(account)["cash"] == Decimal("80")
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED and dispute.refunded.amount == 50
    assert money(account)["cash"] == Decimal("30")
    assert_books_balance()


def test_debt_is_paid_first_by_later_top_ups_after_arrears_and_passed_on(ready_user, clerk, cs):
    """R-DIS-3 / R-DIS-5: a later top-up pays arrears first, then the debt; what it pays of
    the debt becomes rights-holder payable and a payout; paid in full, the dispute settles
    and the account unlocks."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "100.00", clerk)
    consume(account, "100.00")
    consume(account, "3.00")  # arrears 3
    dispute = open_for([topup], cs, "100.00")
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    assert dispute.debt.amount == Decimal("100") and dispute.refunded_micro == 0
    lot = credit_lot(account, cny("53.00"), channel="bank", idempotency_key="later-1")
    assert lot.remaining_micro == 0  # 3 arrears + 50 debt
    assert debt_micro(account.pk) == 50_000_000
    assert money(account)["arrears"] == 0
    assert clockwork.collect_debt_payments() == 1
    assert clockwork.collect_debt_payments() == 0  # once
    dispute.refresh_from_db()
    assert dispute.debt_paid_micro == 50_000_000 and dispute.state == DisputeState.IN_DEBT
    lot2 = credit_lot(account, cny("70.00"), channel="bank", idempotency_key="later-2")
    assert lot2.remaining_micro == 20_000_000
    clockwork.collect_debt_payments()
    dispute.refresh_from_db()
    account.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED and dispute.debt_end == "paid"
    assert account.standing == Standing.ACTIVE
    assert DebtCollection.objects.filter(dispute=dispute).count() == 2
    assert sum(p.amount_micro for p in dispute.payouts.all()) == 100_000_000
    assert platform(AccountKind.DISPUTE_CLAIMS) == 0
    assert platform(AccountKind.RIGHTS_HOLDER_PAYABLE) == 100_000_000  # until paid out
    assert_books_balance()


def test_unpaid_debt_is_escalated_at_its_due_date(ready_user, clerk, cs):
    """R-DIS-3: a debt unpaid at its due date goes to the escalation queue (state, staff
    alert, user told); before the due date nothing happens; once."""
    from ops.models import StaffAlert

    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "40.00", clerk)
    consume(account, "40.00")
    dispute = open_for([topup], cs, "40.00")
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    assert clockwork.escalate_overdue_debts(dispute.debt_due_at) == 0
    after_due = dispute.debt_due_at + datetime.timedelta(minutes=1)
    assert clockwork.escalate_overdue_debts(after_due) == 1
    assert clockwork.escalate_overdue_debts(after_due) == 0
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.ESCALATED
    assert StaffAlert.objects.filter(key=f"dispute-debt:{dispute.pk}").exists()
    assert len(notices(ready_user, "dispute_debt_escalated")) == 1


# --------------------------------------------------------------------- R-DIS-5 debt ends


def _in_debt(ready_user, clerk, cs, amount="40.00"):
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, amount, clerk)
    consume(account, amount)
    dispute = open_for([topup], cs, amount)
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    return dispute


def test_waiver_needs_proof_and_settles(ready_user, clerk, cs):
    """R-DIS-5: a waiver without proof is refused (nothing moves); with the proof attached,
    the debt ends (debt bucket and claims back to zero), settled, unlocked."""
    dispute = _in_debt(ready_user, clerk, cs)
    with pytest.raises(ValidationError) as exc:
        waive_debt(dispute, actor=cs, reason="rights holder waived by phone")
    assert exc.value.code == "proof_required"
    assert debt_micro(ready_user.balance_account.pk) == 40_000_000
    add_debt_proof(dispute, evidence("waiver.pdf"), actor=cs)
    waive_debt(dispute, actor=cs, reason="signed waiver")
    dispute.refresh_from_db()
    ready_user.balance_account.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED and dispute.debt_end == "waived"
    assert dispute.debt_left_micro == 0
    assert debt_micro(ready_user.balance_account.pk) == 0
    assert platform(AccountKind.DISPUTE_CLAIMS) == 0
    assert ready_user.balance_account.standing == Standing.ACTIVE
    assert dispute.files.filter(kind=FileKind.DEBT_PROOF).count() == 1
    assert_books_balance()


def test_direct_repayment_with_proof_settles_and_needs_the_permission(ready_user, clerk, cs, risk):
    """R-DIS-5: the user repaid the rights holder directly: CS records it with proof;
    someone without the permission cannot."""
    dispute = _in_debt(ready_user, clerk, cs)
    with pytest.raises(PermissionDenied):
        add_debt_proof(dispute, evidence("receipt.pdf"), actor=risk)
    add_debt_proof(dispute, evidence("receipt.pdf"), actor=cs)
    with pytest.raises(PermissionDenied):
        record_direct_repayment(dispute, actor=risk, reason="receipt")
    record_direct_repayment(dispute, actor=cs, reason="bank receipt of the repayment")
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED and dispute.debt_end == "repaid_directly"
    with pytest.raises(WorkflowError):
        waive_debt(dispute, actor=cs, reason="again")
    assert_books_balance()


def test_partly_paid_debt_then_waived_ends_only_what_is_left(ready_user, clerk, cs):
    """R-DIS-5: a top-up paid part of the debt; the waiver ends only the rest."""
    dispute = _in_debt(ready_user, clerk, cs)
    account = ready_user.balance_account
    credit_lot(account, cny("15.00"), channel="bank", idempotency_key="part")
    clockwork.collect_debt_payments()
    add_debt_proof(dispute, evidence(), actor=cs)
    waive_debt(dispute, actor=cs, reason="waived the rest")
    dispute.refresh_from_db()
    assert dispute.debt_paid_micro == 15_000_000 and dispute.debt_ended_micro == 25_000_000
    assert debt_micro(account.pk) == 0
    assert_books_balance()


# --------------------------------------------------------------------- the lock and others


def test_locked_account_cannot_file_refunds_but_top_ups_still_credit(ready_user, clerk, cs):
    """R-DIS-1 / issue 11: a locked account cannot file a refund or an invoice; its own
    top-ups still credit."""
    from refunds.services.filing import submit_refund
    from tests.refunds.conftest import proof

    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    bank_topup(ready_user, "20.00", clerk)
    open_for([topup], cs, "30.00")
    with pytest.raises(ValidationError):
        submit_refund(ready_user, proofs=[proof()])
    from invoices.services._common import refuse_standing

    ready_user.balance_account.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        refuse_standing(ready_user.balance_account.standing)
    assert exc.value.code == "standing"
    bank_topup(ready_user, "5.00", clerk)
    assert money(ready_user.balance_account)["cash"] == Decimal("55")


def test_dispute_of_a_user_also_in_a_refund_leaves_the_hold_alone(ready_user, clerk, cs):
    """R-DIS-3 (D-style: also in a refund): money set aside for a refund is not cash; the
    deadline takes only cash; the refund cannot be approved while locked."""
    from refunds.services.decisions import approve_refund, take_for_review
    from refunds.services.filing import submit_refund
    from tests.factories import StaffFactory, grant
    from tests.refunds.conftest import CS_PERMS, FINANCE_PERMS, proof

    own = bank_topup(ready_user, "20.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()], reason="leaving")
    assert money(ready_user.balance_account)["hold"] == Decimal("20")
    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    consume(ready_user.balance_account, "10.00")
    dispute = open_for([topup], cs, "30.00")
    agent = grant(StaffFactory(), *CS_PERMS)
    take_for_review(request, actor=agent)
    with pytest.raises(ValidationError):
        approve_refund(request, actor=grant(StaffFactory(), *FINANCE_PERMS), reason="ok")
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    assert dispute.refunded.amount == 20 and dispute.debt.amount == 10
    assert money(ready_user.balance_account)["hold"] == Decimal("20")
    own.lot.refresh_from_db()
    assert own.lot.held_micro == 20_000_000
    assert_books_balance()


def test_two_disputes_a_freeze_and_a_staff_unlock(ready_user, clerk, cs, risk):
    """R-DIS-1 / R-DIS-5: clearing one dispute keeps the lock another still holds; staff
    cannot unlock a held account or key; lifting a freeze during a dispute leaves the
    account locked; the last dispute to end unlocks it."""
    from accounts.services import unlock_api_key
    from tests.factories import StaffFactory, grant

    admin = grant(
        StaffFactory(),
        "accounts.lock_balanceaccount",
        "accounts.freeze_balanceaccount",
        "accounts.lock_apikey",
    )
    key, _ = create_api_key(ready_user, name="k")
    account = ready_user.balance_account
    first = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    second = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    assert second.locked_key_ids == [key.pk] and second.holds_account
    with pytest.raises(WorkflowError):
        change_standing(account, "unlock", actor=admin, reason="try")
    key.refresh_from_db()
    with pytest.raises(WorkflowError):
        unlock_api_key(key, actor=admin, reason="try")
    withdraw(first, actor=cs, reason="withdrawn")
    account.refresh_from_db()
    key.refresh_from_db()
    assert account.standing == Standing.LOCKED and key.state == ApiKeyState.LOCKED
    add_evidence(second, evidence(), actor=ready_user)
    accept_evidence(second, actor=risk)
    account.refresh_from_db()
    key.refresh_from_db()
    assert account.standing == Standing.ACTIVE and key.state == ApiKeyState.ACTIVE


def test_freeze_lifted_during_a_dispute_leaves_the_account_locked(ready_user, clerk, cs, risk):
    """R-DIS-1: opened on a frozen account, the dispute holds it: unfreezing makes it
    locked, not active; clearing the dispute then unlocks it. A dispute never lifts a
    freeze."""
    from tests.factories import StaffFactory, grant

    officer = grant(StaffFactory(), "accounts.freeze_balanceaccount")
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "10.00", clerk)
    change_standing(
        account, "freeze", actor=officer, reason="order", authority="Court", document_number="1"
    )
    dispute = open_for([topup], cs, "10.00")
    account.refresh_from_db()
    assert account.standing == Standing.FROZEN
    change_standing(account, "unfreeze", actor=officer, reason="order lifted")
    account.refresh_from_db()
    assert account.standing == Standing.LOCKED
    withdraw(dispute, actor=cs, reason="withdrawn")
    account.refresh_from_db()
    assert account.standing == Standing.ACTIVE
    # and the other way round: a freeze outlives a cleared dispute
    dispute2 = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    change_standing(
        account, "freeze", actor=officer, reason="order", authority="Court", document_number="2"
    )
    withdraw(dispute2, actor=cs, reason="withdrawn")
    account.refresh_from_db()
    assert account.standing == Standing.FROZEN
    change_standing(account, "unfreeze", actor=officer, reason="order lifted")
    account.refresh_from_db()
    assert account.standing == Standing.ACTIVE


def test_no_deadline_refund_while_an_authority_freeze_holds(ready_user, clerk, cs):
    """R-DIS-3 / R-ACC-8: at the deadline of a frozen account no money leaves; the refund
    happens at the first run after the freeze is lifted (the account is then locked)."""
    from tests.factories import StaffFactory, grant

    officer = grant(StaffFactory(), "accounts.freeze_balanceaccount")
    account = ready_user.balance_account
    dispute = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    change_standing(
        account, "freeze", actor=officer, reason="order", authority="Court", document_number="3"
    )
    at = after_deadline(dispute)
    assert run_deadline(at) == 0
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN and money(account)["cash"] == Decimal("10")
    change_standing(account, "unfreeze", actor=officer, reason="lifted")
    assert run_deadline(at) == 1
    dispute.refresh_from_db()
    account.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED and account.standing == Standing.ACTIVE


def test_staff_lock_before_the_dispute_is_not_lifted_by_it(ready_user, clerk, cs):
    """R-DIS-5: an account a staff member had locked before the dispute stays locked when
    the dispute ends (the dispute unlocks only what it locked)."""
    account = ready_user.balance_account
    change_standing(account, "lock", actor=None, reason="staff lock")
    dispute = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    assert not dispute.holds_account
    withdraw(dispute, actor=cs, reason="withdrawn")
    account.refresh_from_db()
    assert account.standing == Standing.LOCKED


# --------------------------------------------------------------------- reminders, R-DIS-4


def test_reminders_7_3_and_1_days_before_each_deadline_once_each(ready_user, clerk, cs):
    """R-DIS-3: reminders 7, 3 and 1 days before the dispute's deadline and the debt's due
    date, once each; a job that was down sends only the nearest one."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "40.00", clerk)
    consume(account, "40.00")
    dispute = open_for([topup], cs, "40.00")
    day = datetime.timedelta(days=1)
    hour = datetime.timedelta(hours=1)
    assert clockwork.send_reminders(dispute.deadline_at - 8 * day) == 0
    assert clockwork.send_reminders(dispute.deadline_at - 7 * day + hour) == 1
    assert clockwork.send_reminders(dispute.deadline_at - 7 * day + 2 * hour) == 0
    assert clockwork.send_reminders(dispute.deadline_at - 2 * day) == 1  # the 3-day one
    assert clockwork.send_reminders(dispute.deadline_at - day + hour) == 1
    assert clockwork.send_reminders(dispute.deadline_at - hour) == 0
    assert len(notices(ready_user, "dispute_deadline_reminder")) == 3
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    due = dispute.debt_due_at
    for n in (7, 3, 1):
        clockwork.send_reminders(due - n * day + hour)
        clockwork.send_reminders(due - n * day + 2 * hour)
    reminders = notices(ready_user, "dispute_debt_reminder")
    assert len(reminders) == 3 and "40.00" in reminders[0].body


def test_deadline_job_twice_gives_one_refund_and_one_debt(ready_user, clerk, cs):
    """R-DIS-4: the job re-run (and the refund called again directly) moves nothing more:
    one refund transaction, one debt, one payout."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "40.00", clerk)
    consume(account, "25.00")
    dispute = open_for([topup], cs, "40.00")
    at = after_deadline(dispute)
    assert run_deadline(at) == 1
    assert run_deadline(at) == 0
    assert clockwork.refund_at_deadline(dispute, now=at) is None
    assert (
        Posting.objects.filter(transaction__kind=TxnKind.DISPUTE_REFUND)
        .values("transaction")
        .distinct()
        .count()
        == 1
    )
    assert debt_micro(account.pk) == 25_000_000
    assert RightsHolderPayout.objects.count() == 1
    assert (
        LedgerAccount.objects.get(owner=account, kind="dispute_debt").balance_micro == -25_000_000
    )


def test_runner_runs_the_jobs_by_name(ready_user, clerk, cs):
    """R-DIS-4: the jobs are registered and runnable by hand through the ops runner."""
    from ops.framework import REGISTRY

    assert {
        "dispute_deadlines",
        "dispute_debts",
        "dispute_reminders",
        "settle_dispute_payouts",
    } <= set(REGISTRY)


def test_debt_a_top_up_pays_is_passed_on_when_it_commits(
    ready_user, clerk, cs, django_capture_on_commit_callbacks
):
    """R-DIS-5 (issue 24 point 8): debt a top-up collects is passed on to the rights holder
    as the top-up commits (its collection and payout exist at once), not by the
    `dispute_debts` job 5 minutes later; the job then finds nothing left to do."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "100.00", clerk)
    consume(account, "100.00")
    dispute = open_for([topup], cs, "100.00")
    run_deadline(after_deadline(dispute))
    with django_capture_on_commit_callbacks(execute=True):
        credit_lot(account, cny("40.00"), channel="bank", idempotency_key="pays-debt")
    dispute.refresh_from_db()
    assert dispute.debt_paid_micro == 40_000_000
    assert DebtCollection.objects.filter(dispute=dispute).count() == 1
    assert sum(p.amount_micro for p in dispute.payouts.all()) == 40_000_000
    assert clockwork.collect_debt_payments() == 0
    assert_books_balance()
