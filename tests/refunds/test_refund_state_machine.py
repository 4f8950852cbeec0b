"""Random sequences of top-ups with promotions, consumption and refunds (R-REF-2 … R-REF-4).

After every step: the books balance (billing.services.reconcile), no bucket is below
zero except arrears, a lot is refunded at most once, and every refund line stays
within R-REF-2 as computed here independently of the preview, from the charges'
own splits (unconsumed cash of the lot minus the discount it earned that charges
spent, floored at zero, whole fen). Filing, rejecting and cancelling never move
trial or discount money; approving only voids the discount of the refunded lots.

Top-ups are credited straight through the ledger (billing.services.ledger.credit_lot)
and promotions as the discount grants they give (grant_funds with source_lot), the
way topups.services does, to keep each example fast; consumption is charge_usage.
"""

import datetime
import itertools
import os
from contextlib import suppress
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from billing.micro import to_micro
from billing.models import Grant, LedgerAccount, Lot, Posting, UsageEvent
from billing.services.ledger import credit_lot, grant_funds
from billing.services.reconcile import reconcile
from billing.services.settlement import charge_usage
from refunds.models import OPEN_STATES, RefundLine, RefundRequest, RefundState
from refunds.services.decisions import (
    approve_refund,
    cancel_refund,
    reject_refund,
    take_for_review,
)
from refunds.services.filing import submit_refund
from refunds.services.payouts import record_transfer, start_payout
from tests.factories import StaffFactory, UserFactory, cny, grant

from .conftest import CS_PERMS, FINANCE_PERMS, proof

FEN = st.integers(min_value=100, max_value=20_000).map(lambda n: Decimal(n) / 100)
MICRO = st.integers(min_value=1, max_value=60_000_000).map(lambda n: Decimal(n) / 1_000_000)
_keys = itertools.count(1)


def discount_spent_by_lot(account_id) -> dict[int, int]:
    """From the charges' splits, not the ledger's postings: discount each lot earned
    that charges spent."""
    source = dict(
        Grant.objects.filter(account_id=account_id, kind="discount").values_list(
            "pk", "source_lot_id"
        )
    )
    spent = {}
    for split in UsageEvent.objects.filter(account_id=account_id).values_list("split", flat=True):
        for part in split:
            if part["bucket"] == "discount" and source.get(part["grant"]):
                lot = source[part["grant"]]
                spent[lot] = spent.get(lot, 0) + to_micro(Decimal(part["amount"]))
    return spent


class RefundMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.sid = transaction.savepoint()
        self.user = UserFactory(phone="")
        self.account = self.user.balance_account
        self.cs = grant(StaffFactory(), *CS_PERMS)
        self.finance = grant(StaffFactory(), *FINANCE_PERMS)
        # every example starts with a paid top-up that earned a promotion
        self.top_up(Decimal("100.00"), Decimal("10.00"))

    def teardown(self):
        if hasattr(self, "sid"):
            transaction.savepoint_rollback(self.sid)

    def _buckets(self):
        return dict(
            LedgerAccount.objects.filter(owner=self.account).values_list("kind", "balance_micro")
        )

    @rule(amount=FEN, promo=st.one_of(st.none(), FEN))
    def top_up(self, amount, promo):
        lot = credit_lot(
            self.account, cny(amount), channel="bank", idempotency_key=f"sm-lot-{next(_keys)}"
        )
        if promo is not None:
            grant_funds(
                self.account,
                cny(promo),
                kind="discount",
                expires_at=None,
                source_lot=lot,
                idempotency_key=f"sm-promo-{next(_keys)}",
            )

    @rule(amount=FEN)
    def trial(self, amount):
        grant_funds(
            self.account,
            cny(amount),
            kind="trial",
            expires_at=None,
            idempotency_key=f"sm-trial-{next(_keys)}",
        )

    @rule(amount=MICRO)
    def consume(self, amount):
        charge_usage(self.account, cny(amount), request_id=f"sm-use-{next(_keys)}", model="m")

    @rule(partial=st.one_of(st.none(), st.integers(1, 10_000)))
    def submit(self, partial):
        spent = discount_spent_by_lot(self.account.pk)
        lots = {
            lot.pk: lot for lot in Lot.objects.filter(account=self.account, closed_at__isnull=True)
        }
        before = self._buckets()
        amount = None if partial is None else Decimal(partial) / 100
        try:
            request = submit_refund(self.user, proofs=[proof()], amount=amount)
        except ValidationError as exc:
            assert exc.code in ("nothing_refundable", "above_refundable"), exc
            return
        after = self._buckets()
        # never trial or discount money
        assert before.get("trial", 0) == after.get("trial", 0)
        assert before.get("discount", 0) == after.get("discount", 0)
        for line in request.lines.all():
            lot = lots[line.lot_id]
            bound = max(0, lot.remaining_micro - spent.get(lot.pk, 0))
            bound -= bound % 10_000
            assert 0 < line.asked_micro <= bound, (line.asked_micro, bound)
            assert line.held_micro + line.arrears_micro == line.asked_micro

    def _pick(self, data, states):
        ids = list(
            RefundRequest.objects.filter(account=self.account, state__in=states).values_list(
                "pk", flat=True
            )
        )
        if not ids:
            return None
        return RefundRequest.objects.get(pk=data.draw(st.sampled_from(ids)))

    def _has(self, states):
        return RefundRequest.objects.filter(account=self.account, state__in=states).exists()

    @precondition(lambda self: self._has(OPEN_STATES))
    @rule(data=st.data())
    def approve(self, data):
        request = self._pick(data, OPEN_STATES)
        if request is None:
            return
        if request.state == RefundState.SUBMITTED:
            take_for_review(request, actor=self.cs)
        before = self._buckets()
        spent = discount_spent_by_lot(self.account.pk)
        lines = {line.lot_id: line for line in request.lines.all()}
        remaining = dict(Lot.objects.filter(pk__in=lines).values_list("pk", "remaining_micro"))
        approve_refund(request, actor=self.finance)
        after = self._buckets()
        assert before.get("trial", 0) == after.get("trial", 0)
        voided = Grant.objects.filter(source_lot_id__in=lines, kind="discount", state="voided")
        assert all(g.source_lot_id in lines for g in voided)
        for line in RefundLine.objects.filter(request=request):
            # R-REF-2 as of now: what the lot held plus its unheld cash, minus the discount
            # it earned that was spent (during the review too)
            unconsumed = remaining[line.lot_id] + lines[line.lot_id].held_micro
            bound = max(0, unconsumed - spent.get(line.lot_id, 0))
            assert line.refunded_micro <= bound
            assert line.refunded_micro <= line.held_micro
        assert Lot.objects.filter(pk__in=lines, closed_at__isnull=True).count() == 0

    @precondition(lambda self: self._has(OPEN_STATES))
    @rule(data=st.data(), reject=st.booleans())
    def withdraw(self, data, reject):
        request = self._pick(data, OPEN_STATES)
        if request is None:
            return
        before = self._buckets()
        if reject:
            reject_refund(request, actor=self.cs, reason="not this time")
        else:
            cancel_refund(request, actor=self.user)
        after = self._buckets()
        assert before.get("trial", 0) == after.get("trial", 0)
        assert before.get("discount", 0) == after.get("discount", 0)
        assert after.get("hold", 0) == before.get("hold", 0) - request.held_micro

    @precondition(lambda self: self._has([RefundState.APPROVED]))
    @rule(data=st.data())
    def pay(self, data):
        request = self._pick(data, [RefundState.APPROVED])
        if request is None:
            return
        start_payout(request, actor=self.finance)
        request.refresh_from_db()
        with suppress(ValidationError):
            record_transfer(
                request,
                actor=self.finance,
                bank_reference=f"T{next(_keys)}",
                transferred_on=datetime.date(2026, 12, 1),
            )
        request.refresh_from_db()
        assert request.state == RefundState.PAID

    @invariant()
    def books_balance(self):
        if not hasattr(self, "account"):
            return
        assert sum(Posting.objects.values_list("amount_micro", flat=True)) == 0
        report = reconcile()
        assert report.ok, report.summary()
        for kind, micro in self._buckets().items():
            assert micro <= 0 if kind == "arrears" else micro >= 0
        approved = RefundLine.objects.filter(approved=True)
        assert approved.count() == approved.values("lot").distinct().count()
        # the hold is exactly what open requests hold
        open_held = sum(
            RefundRequest.objects.filter(account=self.account, state__in=OPEN_STATES).values_list(
                "held_micro", flat=True
            )
        )
        assert self._buckets().get("hold", 0) == open_held


@pytest.mark.django_db
def test_refund_state_machine():
    """R-REF-2/R-REF-3/R-REF-4: refunds never exceed R-REF-2, never touch trial or discount
    money (beyond voiding the refunded lots' discounts), and the books balance."""
    config = settings(
        max_examples=int(os.environ.get("REFUND_SM_EXAMPLES", "20")),
        stateful_step_count=16,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(RefundMachine, settings=config)
