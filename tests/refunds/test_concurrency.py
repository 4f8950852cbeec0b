"""Refunds under concurrency on PostgreSQL with real threads (R-REF-1, R-REF-3, R-LED-6)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.models import Lot, UsageEvent
from billing.services.settlement import charge_usage
from refunds.models import RefundRequest, RefundState
from refunds.services.decisions import approve_refund, reject_refund, take_for_review
from refunds.services.filing import submit_refund
from tests.factories import cny
from tests.ledger.conftest import run_threads

from .conftest import assert_books_balance, bank_topup, money, proof

pytestmark = [pytest.mark.django_db(transaction=True)]


def _outcome(fn):
    try:
        fn()
        return "won"
    except ValidationError as exc:
        return exc.code or "refused"


def test_two_approvers_at_once_exactly_one_wins(ready_user, clerk, cs, finance, finance2):
    """R-REF-1: two finance approvers approve one request at once: exactly one wins, the
    other is refused from the state it reads after the winner's commit; the money moves
    once."""
    bank_topup(ready_user, "50.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    take_for_review(request, actor=cs)
    approvers = [finance, finance2]

    def work(i):
        fresh = RefundRequest.objects.get(pk=request.pk)
        return _outcome(lambda: approve_refund(fresh, actor=approvers[i], reason="ok"))

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(results) == ["won", "wrong_state"]
    request.refresh_from_db()
    assert request.state == RefundState.APPROVED and request.refunded.amount == Decimal("50")
    assert money(ready_user.balance_account)["hold"] == 0
    assert_books_balance()


def test_two_agents_take_one_request_at_once(ready_user, clerk, cs):
    """R-REF-1: two CS agents take one request at once: one becomes its reviewer, the
    other is told it is no longer submitted."""
    from tests.factories import StaffFactory, grant

    from .conftest import CS_PERMS

    bank_topup(ready_user, "20.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    agents = [cs, grant(StaffFactory(), *CS_PERMS)]

    def work(i):
        fresh = RefundRequest.objects.get(pk=request.pk)
        return _outcome(lambda: take_for_review(fresh, actor=agents[i], reason="mine"))

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(results) == ["won", "wrong_state"]
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW
    assert request.reviewer_id == agents[results.index("won")].pk


def test_approve_racing_reject_exactly_one_wins(ready_user, clerk, cs, finance):
    """R-REF-1: a rejection and an approval at once: one wins, the hold moves once."""
    bank_topup(ready_user, "50.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    take_for_review(request, actor=cs)

    def work(i):
        fresh = RefundRequest.objects.get(pk=request.pk)
        if i == 0:
            return _outcome(lambda: approve_refund(fresh, actor=finance, reason="ok"))
        return _outcome(lambda: reject_refund(fresh, actor=cs, reason="no proof"))

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(results) == ["won", "wrong_state"]
    request.refresh_from_db()
    s = money(ready_user.balance_account)
    if request.state == RefundState.APPROVED:
        assert s["cash"] == 0 and s["hold"] == 0
    else:
        assert request.state == RefundState.REJECTED and s["cash"] == Decimal("50")
    assert_books_balance()


def test_refund_racing_consumption_never_spends_held_money(ready_user, clerk):
    """R-REF-3 / R-LED-6: a refund filed while calls are charged: the held money is never
    spent; each call took only cash left unheld, the rest became arrears."""
    account = ready_user.balance_account
    bank_topup(ready_user, "20.00", clerk)

    def work(i):
        if i == 0:
            return submit_refund(ready_user, proofs=[proof()]).pk
        return [
            charge_usage(account, cny("0.500000"), request_id=f"race-{i}-{j}", model="m").pk
            for j in range(4)
        ]

    results, errors = run_threads(7, work)
    assert not errors, errors
    request = RefundRequest.objects.get(pk=results[0])
    lot = Lot.objects.get()
    charges = UsageEvent.objects.all()
    spent_cash = sum(c.cash_micro for c in charges)
    assert charges.count() == 24
    assert lot.held_micro == request.held_micro > 0
    assert spent_cash + lot.held_micro + lot.remaining_micro == 20_000_000
    assert lot.remaining_micro == 0  # everything unconsumed at filing was held
    s = money(account)
    assert s["hold"] == request.held.amount
    assert s["arrears"] == Decimal("12") - Decimal(spent_cash) / 1_000_000
    assert_books_balance()
