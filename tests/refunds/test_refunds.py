"""Refund requests end to end on the services (SPEC §6, R-REF-1 … R-REF-6)."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.services import change_standing
from billing.models import GrantState, Lot, Posting, TxnKind
from billing.services.authorization import authorize
from core.models import AuditRecord
from core.workflow import WorkflowError, perform_transition
from notices.models import Notice
from refunds.models import PayoutState, RefundLine, RefundRequest, RefundState
from refunds.selectors import refund_preview, request_for
from refunds.services.decisions import (
    approve_refund,
    cancel_refund,
    reject_refund,
    take_for_review,
)
from refunds.services.filing import submit_refund
from refunds.services.payouts import record_transfer, start_payout
from tests.factories import StaffFactory, UserFactory

from .conftest import (
    assert_books_balance,
    bank_topup,
    consume,
    discount_for,
    money,
    proof,
    trial_for,
)

pytestmark = pytest.mark.django_db


def _approved(user, cs, finance, **kwargs):
    request = submit_refund(user, proofs=[proof()], **kwargs)
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance, reason="documents fine")
    request.refresh_from_db()
    return request


def test_preview_per_lot_r_ref_2(ready_user, clerk):
    """R-REF-2: per lot, refundable = unconsumed − invoiced unconsumed (0) − discount used
    that this lot earned, floored at zero; trial money never counts."""
    account = ready_user.balance_account
    first = bank_topup(ready_user, "100.00", clerk)
    second = bank_topup(ready_user, "50.00", clerk)
    discount_for(first, "30.00")
    trial_for(account, "5.00")
    # trial 5 first, then discount 30, then cash of the oldest lot: 10
    consume(account, "45.00")
    preview = refund_preview(account)
    one, two = preview.lots
    assert one.lot_id == first.lot_id and two.lot_id == second.lot_id
    assert one.paid.amount == Decimal("100") and one.consumed.amount == Decimal("10")
    assert one.discount_earned.amount == Decimal("30") and one.discount_used.amount == Decimal("30")
    assert one.invoiced_unconsumed.amount == 0
    assert one.refundable.amount == Decimal("60")  # 90 unconsumed − 30 discount used
    assert two.refundable.amount == Decimal("50")
    assert preview.total.amount == Decimal("110") and preview.net.amount == Decimal("110")


def test_preview_floors_at_zero_r_ref_2(ready_user, clerk):
    """R-REF-2: discount used above the lot's unconsumed cash gives zero, never negative."""
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "10.00", clerk)
    discount_for(topup, "20.00")
    consume(account, "25.00")  # 20 discount, 5 cash
    (item,) = refund_preview(account).lots
    assert item.unconsumed.amount == Decimal("5") and item.refundable.amount == 0
    with pytest.raises(ValidationError) as exc:
        submit_refund(ready_user, proofs=[proof()])
    assert exc.value.code == "nothing_refundable"


def test_preview_query_count_is_fixed(ready_user, clerk, django_assert_max_num_queries):
    """R-REF-2: the preview is two queries however many lots and grants there are."""
    account = ready_user.balance_account
    for _ in range(6):
        discount_for(bank_topup(ready_user, "10.00", clerk), "2.00")
    consume(account, "13.00")
    with django_assert_max_num_queries(2):
        preview = refund_preview(account)
    assert len(preview.lots) == 6


def test_submission_holds_money_in_one_transaction_r_ref_3(ready_user, clerk):
    """R-REF-3: the refundable amount of every lot moves to hold in ONE ledger transaction;
    held money is not available to authorize or to charges."""
    account = ready_user.balance_account
    bank_topup(ready_user, "100.00", clerk)
    bank_topup(ready_user, "20.00", clerk)
    trial_for(account, "3.00")
    before = Posting.objects.filter(transaction__kind=TxnKind.HOLD).count()
    request = submit_refund(ready_user, proofs=[proof()], reason="moving on")
    assert request.state == RefundState.SUBMITTED
    assert request.held.amount == Decimal("120")
    holds = {p.transaction_id for p in Posting.objects.filter(transaction__kind=TxnKind.HOLD)}
    assert len(holds) == 1 and Posting.objects.count() > before
    s = money(account)
    assert s["cash"] == 0 and s["hold"] == Decimal("120") and s["available"] == Decimal("3")
    assert authorize_available(account) == Decimal("3")
    charge = consume(account, "10.00")  # 3 trial, the rest arrears: never the hold
    assert charge.cash_micro == 0 and charge.arrears_micro == 7_000_000
    assert money(account)["hold"] == Decimal("120")
    assert Notice.objects.filter(user=ready_user, kind="refund_submitted").count() == 1
    assert_books_balance()


def authorize_available(account):
    from accounts.services import create_api_key

    key, _raw = create_api_key(account.user, name="k")
    return authorize(key).available.amount


def test_partial_amount_and_bad_input(ready_user, clerk):
    """R-REF-2: a partial amount is taken oldest lot first; 3 decimals, above the
    refundable amount, no proof, a non-PDF proof are refused and move nothing."""
    account = ready_user.balance_account
    bank_topup(ready_user, "30.00", clerk)
    bank_topup(ready_user, "30.00", clerk)
    for amount, code in (("10.005", "too_many_decimals"), ("60.01", "above_refundable")):
        with pytest.raises(ValidationError) as exc:
            submit_refund(ready_user, proofs=[proof()], amount=amount)
        assert exc.value.code == code
    with pytest.raises(ValidationError):
        submit_refund(ready_user, proofs=[])
    with pytest.raises(ValidationError):
        submit_refund(ready_user, proofs=[proof("a.pdf", b"MZ not a pdf")])
    assert RefundRequest.objects.count() == 0 and money(account)["hold"] == 0
    request = submit_refund(ready_user, proofs=[proof()], amount="40.00")
    asked = list(request.lines.order_by("id").values_list("asked_micro", flat=True))
    assert asked == [30_000_000, 10_000_000]
    assert money(account)["cash"] == Decimal("20")


@pytest.mark.parametrize("transition", ["lock", "freeze", "terminate"])
def test_locked_frozen_terminated_cannot_file(ready_user, clerk, transition):
    """R-ACC-8 / R-REF-1: a locked, frozen or terminated account cannot file."""
    bank_topup(ready_user, "10.00", clerk)
    kwargs = {"authority": "Court", "document_number": "X-1"} if transition == "freeze" else {}
    change_standing(ready_user.balance_account, transition, reason="test", **kwargs)
    with pytest.raises(ValidationError) as exc:
        submit_refund(ready_user, proofs=[proof()])
    assert exc.value.code == "standing"
    assert money(ready_user.balance_account)["hold"] == 0


def test_arrears_settled_first(ready_user, clerk):
    """R-REF-2/issue 10: arrears are settled from the refund first and shown in the preview."""
    account = ready_user.balance_account
    bank_topup(ready_user, "50.00", clerk)
    # a refund put the cash on hold, consumption ran into arrears, the refund was withdrawn
    first = submit_refund(ready_user, proofs=[proof()])
    consume(account, "8.00")
    cancel_refund(first, actor=ready_user)
    assert money(account)["arrears"] == Decimal("8") and money(account)["cash"] == Decimal("50")
    preview = refund_preview(account)
    assert preview.arrears.amount == Decimal("8") and preview.net.amount == Decimal("42")
    request = submit_refund(ready_user, proofs=[proof()])
    assert request.arrears.amount == Decimal("8") and request.held.amount == Decimal("42")
    s = money(account)
    assert s["arrears"] == 0 and s["hold"] == Decimal("42") and s["cash"] == 0
    assert_books_balance()


def test_full_flow_bank_r_ref_1_r_ref_4_r_ref_5(ready_user, clerk, cs, finance):
    """R-REF-1, R-REF-4, R-REF-5: submitted → under review → approved → paying → paid;
    approval closes the lot and voids its discount (unused part leaves the balance);
    finance records the bank transfer; the money leaves through refunds payable."""
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "100.00", clerk)
    grant = discount_for(topup, "20.00")
    consume(account, "5.00")  # from the discount
    request = submit_refund(ready_user, proofs=[proof()])
    assert request.held.amount == Decimal("95")  # 100 − 5 discount used
    take_for_review(request, actor=cs)
    assert request.state == RefundState.UNDER_REVIEW and request.reviewer == cs
    approve_refund(request, actor=finance, reason="ok")
    request.refresh_from_db()
    assert request.state == RefundState.APPROVED and request.refunded.amount == Decimal("95")
    lot = Lot.objects.get(pk=topup.lot_id)
    assert lot.closed_at is not None and lot.held_micro == 0
    assert lot.remaining_micro == 0  # R-REF-7: the deducted discount left the balance
    grant.refresh_from_db()
    assert grant.state == GrantState.VOIDED and grant.remaining_micro == 0
    assert money(account)["discount"] == 0
    start_payout(request, actor=finance)
    request.refresh_from_db()
    assert request.state == RefundState.PAYING
    (line,) = request.lines.all()
    assert line.payout_state == PayoutState.PENDING
    import datetime

    record_transfer(
        request,
        actor=finance,
        bank_reference="TRF-001",
        transferred_on=datetime.date(2026, 11, 30),
    )
    request.refresh_from_db()
    line.refresh_from_db()
    assert request.state == RefundState.PAID
    assert line.payout_reference == "TRF-001" and line.payout_channel == "bank"
    topup.refresh_from_db()
    assert topup.state == "paid"  # 95 of 100 refunded: not in full
    kinds = set(Notice.objects.filter(user=ready_user).values_list("kind", flat=True))
    assert {"refund_submitted", "refund_approved", "refund_paid"} <= kinds
    actions = list(
        AuditRecord.objects.filter(object_id=str(request.pk)).values_list("action", flat=True)
    )
    assert {"submit", "take", "approve", "start_payout", "record_transfer"} <= set(actions)
    assert_books_balance()
    assert refund_preview(account).lots == []  # closed for good


def test_four_eyes(ready_user, clerk, finance, finance2):
    """R-REF-1: the approver is never the reviewer; another approver may approve."""
    bank_topup(ready_user, "10.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    take_for_review(request, actor=finance)
    with pytest.raises(WorkflowError) as exc:
        approve_refund(request, actor=finance)
    assert exc.value.code == "four_eyes" and "Four eyes" in exc.value.messages[0]
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW
    approve_refund(request, actor=finance2)
    request.refresh_from_db()
    assert request.state == RefundState.APPROVED and request.approver == finance2


def test_cs_files_for_the_user_and_cannot_approve(ready_user, clerk, cs, finance):
    """R-REF-1: CS files for the user noting how they asked; CS may not approve."""
    bank_topup(ready_user, "10.00", clerk)
    with pytest.raises(ValidationError):
        submit_refund(ready_user, proofs=[proof()], filed_by=cs)  # how did the user ask?
    with pytest.raises(PermissionDenied):
        submit_refund(ready_user, proofs=[proof()], filed_by=StaffFactory(), asked_via="phone")
    request = submit_refund(ready_user, proofs=[proof()], filed_by=cs, asked_via="phone")
    assert request.filed_by == cs and request.asked_via == "phone"
    take_for_review(request, actor=cs)
    with pytest.raises(WorkflowError):
        approve_refund(request, actor=cs)  # four eyes first: cs reviewed it
    other_cs = StaffFactory()
    from tests.factories import grant as give

    give(other_cs, "refunds.review_refundrequest")
    with pytest.raises(PermissionDenied):
        approve_refund(request, actor=other_cs)


def test_second_request_for_a_refunded_lot_is_refused_r_ref_4(ready_user, clerk, cs, finance):
    """R-REF-4: a lot refunded once (even partly) can never be refunded again."""
    bank_topup(ready_user, "100.00", clerk)
    _approved(ready_user, cs, finance, amount="30.00")
    assert money(ready_user.balance_account)["cash"] == Decimal("70")
    with pytest.raises(ValidationError) as exc:
        submit_refund(ready_user, proofs=[proof()])
    assert exc.value.code == "nothing_refundable"
    # and a lot of a request still open cannot be asked for twice
    bank_topup(ready_user, "10.00", clerk)
    submit_refund(ready_user, proofs=[proof()])
    with pytest.raises(ValidationError):
        submit_refund(ready_user, proofs=[proof()])


def test_reject_releases_and_tells_the_reason_r_ref_3(ready_user, clerk, cs):
    """R-REF-3: rejection needs a reason, sent to the user; the hold returns to cash."""
    account = ready_user.balance_account
    bank_topup(ready_user, "40.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    with pytest.raises(ValidationError):
        reject_refund(request, actor=cs, reason="   ")
    reject_refund(request, actor=cs, reason="The proof does not match the payer")
    request.refresh_from_db()
    assert request.state == RefundState.REJECTED
    s = money(account)
    assert s["cash"] == Decimal("40") and s["hold"] == 0
    notice = Notice.objects.get(user=ready_user, kind="refund_rejected")
    assert "The proof does not match the payer" in notice.body
    assert refund_preview(account).total.amount == Decimal("40")  # may ask again
    assert_books_balance()


def test_cancel_by_user_only_before_approval(ready_user, clerk, cs, finance):
    """R-REF-1: the user cancels before approval; another user cannot; not after approval."""
    bank_topup(ready_user, "40.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    with pytest.raises(PermissionDenied):
        cancel_refund(request, actor=UserFactory())
    cancel_refund(request, actor=ready_user)
    request.refresh_from_db()
    assert request.state == RefundState.CANCELLED
    assert money(ready_user.balance_account)["cash"] == Decimal("40")
    approved = _approved(ready_user, cs, finance)
    with pytest.raises(WorkflowError) as exc:
        cancel_refund(approved, actor=ready_user)
    assert exc.value.code == "wrong_state"


def test_wrong_state_transitions(ready_user, clerk, cs, finance):
    """R-REF-1: transitions from the wrong state are refused and change nothing."""
    bank_topup(ready_user, "40.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    with pytest.raises(WorkflowError):
        approve_refund(request, actor=finance)  # not under review yet
    with pytest.raises(WorkflowError):
        start_payout(request, actor=finance)
    take_for_review(request, actor=cs)
    with pytest.raises(WorkflowError):
        take_for_review(request, actor=cs)
    with pytest.raises(WorkflowError):
        perform_transition(request, "complete", actor=finance)  # system only, not mapped
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW


def test_another_users_request_is_not_found(ready_user, clerk):
    """R-REF-1, bad input: another user's request id is not found (a 404 in pages, never a 403)."""
    bank_topup(ready_user, "10.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    assert request_for(ready_user, request.pk) == request
    with pytest.raises(RefundRequest.DoesNotExist):
        request_for(UserFactory(), request.pk)


def test_discount_used_during_review_is_deducted_on_approval_r_ref_2(
    ready_user, clerk, cs, finance
):
    """R-REF-2/§8.2, R-REF-7: discount of the lot used after submission is deducted on
    approval; that part leaves the balance (promotion expense recovered), the rest is
    refunded."""
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "100.00", clerk)
    discount_for(topup, "20.00")
    request = submit_refund(ready_user, proofs=[proof()])
    assert request.held.amount == Decimal("100")
    consume(account, "7.00")  # from the discount, while the cash is held
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    request.refresh_from_db()
    (line,) = request.lines.all()
    assert request.refunded.amount == Decimal("93") and line.released_micro == 0
    assert money(account)["cash"] == 0 and money(account)["discount"] == 0
    assert_books_balance()


def test_frozen_after_submission_cannot_be_approved(ready_user, clerk, cs, finance):
    """R-ACC-8: an account frozen during review cannot have its refund approved."""
    bank_topup(ready_user, "10.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    take_for_review(request, actor=cs)
    change_standing(
        ready_user.balance_account, "freeze", reason="t", authority="Court", document_number="1"
    )
    with pytest.raises(ValidationError) as exc:
        approve_refund(request, actor=finance)
    assert exc.value.code == "standing"
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW


def test_line_per_lot_has_unique_request_number(ready_user, clerk):
    """R-REF-5: one line per lot, each with its own out_request_no."""
    bank_topup(ready_user, "10.00", clerk)
    bank_topup(ready_user, "10.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    numbers = list(
        RefundLine.objects.filter(request=request).values_list("out_request_no", flat=True)
    )
    assert len(numbers) == 2 and len(set(numbers)) == 2


def test_sub_fen_discount_use_during_review_is_deducted_in_whole_fen(
    ready_user, clerk, cs, finance
):
    """R-REF-2/R-LED-3: discount used during the review in fractions of a fen is deducted
    rounded up to the fen, so the refund stays whole fen and can be paid."""
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "100.00", clerk)
    discount_for(topup, "10.00")
    request = submit_refund(ready_user, proofs=[proof()])
    consume(account, "0.000001")
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    request.refresh_from_db()
    assert request.refunded.amount == Decimal("99.99")
    start_payout(request, actor=finance)
    import datetime

    record_transfer(
        request, actor=finance, bank_reference="T", transferred_on=datetime.date.today()
    )
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    # R-REF-7: the 0.000001 of discount used left the balance; the fen's rest stays
    assert money(account)["cash"] == Decimal("0.009999")
    assert_books_balance()


def test_sub_fen_arrears_keep_refunds_in_whole_fen(ready_user, clerk, cs, finance):
    """R-LED-3/issue 10: arrears of fractions of a fen are settled first, at filing and
    when run up during the review; what is held and refunded stays whole fen, the sub-fen
    rest stays in the lot's cash; the refund can be paid."""
    import datetime

    account = ready_user.balance_account
    bank_topup(ready_user, "50.00", clerk)
    first = submit_refund(ready_user, proofs=[proof()])
    consume(account, "0.000001")  # nothing unheld: arrears
    cancel_refund(first, actor=ready_user)
    request = submit_refund(ready_user, proofs=[proof()])
    assert request.arrears_micro == 1 and request.held.amount == Decimal("49.99")
    assert money(account)["arrears"] == 0
    consume(account, "0.000002")  # 0.009999 unheld cash pays it
    consume(account, "0.009997")  # and this; then arrears again:
    consume(account, "0.000003")
    assert money(account)["arrears"] == Decimal("0.000003")
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    request.refresh_from_db()
    assert request.refunded.amount == Decimal("49.98")
    s = money(account)
    assert s["arrears"] == 0 and s["hold"] == 0 and s["cash"] == Decimal("0.009997")
    start_payout(request, actor=finance)
    record_transfer(
        request, actor=finance, bank_reference="T2", transferred_on=datetime.date.today()
    )
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert_books_balance()


def test_partial_amount_with_sub_fen_arrears_holds_exactly_that_amount(ready_user, clerk):
    """R-REF-2/R-REF-3: a partial amount is held exactly even when sub-fen arrears are
    settled first."""
    account = ready_user.balance_account
    bank_topup(ready_user, "20.00", clerk)
    first = submit_refund(ready_user, proofs=[proof()])
    consume(account, "0.000005")
    cancel_refund(first, actor=ready_user)
    with pytest.raises(ValidationError):
        submit_refund(ready_user, proofs=[proof()], amount="20.00")  # net is 19.999995
    request = submit_refund(ready_user, proofs=[proof()], amount="19.99")
    assert request.held.amount == Decimal("19.99") and request.arrears_micro == 5
    assert money(account)["cash"] == Decimal("0.009995")
    assert_books_balance()


def test_staff_without_the_review_permission_cannot_take_the_case(ready_user, clerk, cs):
    """R-REF-1: the proof files come with the request; only a CS agent with the review
    permission takes it."""
    bank_topup(ready_user, "10.00", clerk)
    request = submit_refund(ready_user, proofs=[proof(), proof("second.pdf")])
    with pytest.raises(PermissionDenied):
        take_for_review(request, actor=StaffFactory())
    take_for_review(request, actor=cs)
    assert request.proofs.count() == 2


def test_used_discount_leaves_the_balance_on_approval_r_ref_7(ready_user, clerk, cs, finance):
    """R-REF-7 (issue 24 point 1): top-up 1,000 earning 100 of discount, 150 consumed (100
    of it discount): the refund is 850, and after approval nothing of the lot stays
    spendable: the 100 of discount used leaves the balance in the approval's ledger
    transaction (promotion expense recovered)."""
    from billing.chart import platform_account_id
    from billing.models import AccountKind, LedgerAccount

    account = ready_user.balance_account
    topup = bank_topup(ready_user, "1000.00", clerk)
    discount_for(topup, "100.00")
    consume(account, "150.00")
    expense = LedgerAccount.objects.get(pk=platform_account_id(AccountKind.PROMOTION_EXPENSE))
    request = _approved(ready_user, cs, finance)
    assert request.refunded.amount == Decimal("850")
    assert money(account)["cash"] == 0 and money(account)["discount"] == 0
    assert Lot.objects.get(pk=topup.lot_id).remaining_micro == 0
    (recovered,) = Posting.objects.filter(
        transaction__kind=TxnKind.REFUND, ledger_account_id=expense.pk
    )
    assert recovered.amount_micro == 100_000_000  # in the approval's own transaction
    assert_books_balance()


def test_cash_not_asked_for_stays_spendable_r_ref_7(ready_user, clerk, cs, finance):
    """R-REF-7: only cash the user chose not to refund stays spendable: asking 300 of
    the 850, the used discount (100) still leaves, 550 stays."""
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "1000.00", clerk)
    discount_for(topup, "100.00")
    consume(account, "150.00")
    request = _approved(ready_user, cs, finance, amount="300.00")
    assert request.refunded.amount == Decimal("300")
    assert money(account)["cash"] == Decimal("550") and money(account)["discount"] == 0
    assert_books_balance()


def test_kept_back_cash_spent_during_review_comes_from_the_hold_r_ref_7(
    ready_user, clerk, cs, finance
):
    """R-REF-7: asking 300 of 850, the user then spends all the unheld cash during the
    review; the used discount (100) is then taken from the hold: 200 is refunded."""
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "1000.00", clerk)
    discount_for(topup, "100.00")
    consume(account, "150.00")
    request = submit_refund(ready_user, proofs=[proof()], amount="300.00")
    consume(account, "650.00")
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    request.refresh_from_db()
    assert request.refunded.amount == Decimal("200")
    assert money(account)["cash"] == 0
    assert_books_balance()


def test_preview_counts_pending_usage_so_it_equals_the_hold(ready_user, clerk, client):
    """R-REF-2 (issue 24 point 3): with 30 of usage reported but not settled yet, the
    refund page's preview already shows what the hold will be (70, not 100), and filing
    holds exactly that."""
    from accounts.services import create_api_key
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage

    bank_topup(ready_user, "100.00", clerk)
    _, raw = create_api_key(ready_user, name="k")
    key = resolve_api_keys([raw])[raw]
    (row,) = record_usage([ReportedUsage("pending-30", key, "m", 30_000_000)])
    assert row.status == "accepted"
    assert refund_preview(ready_user.balance_account).net.amount == Decimal("100")  # settled only
    client.force_login(ready_user)
    page = client.get("/refunds/")
    assert page.status_code == 200
    assert page.context["preview"].net.amount == Decimal("70")
    request = submit_refund(ready_user, proofs=[proof()])
    assert request.held.amount == page.context["preview"].net.amount
    assert_books_balance()
