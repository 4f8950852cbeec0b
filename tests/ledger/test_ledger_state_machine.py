"""Random sequences of ledger operations keep the books exact (R-LED-1, R-LED-4, R-LED-6).

After every step: all postings sum to zero, every transaction balances, cached
balances (buckets, lots, grants) equal their postings, and no bucket is below
zero except arrears.
"""

import os
from contextlib import suppress
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from billing.models import LedgerAccount, LedgerTransaction, Lot, Posting
from billing.services.ledger import (
    credit_lot,
    expire_due_grants,
    grant_funds,
    reverse_transaction,
    void_grant,
)
from billing.services.purchases import purchase_package
from billing.services.refund_holds import hold_lots_for_refund, release_refund_hold
from billing.services.settlement import charge_usage
from tests.factories import UserFactory

from .conftest import cny

FEN = st.integers(min_value=1, max_value=50_000).map(lambda n: Decimal(n) / 100)
MICRO = st.integers(min_value=1, max_value=20_000_000).map(lambda n: Decimal(n) / 1_000_000)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        # each example runs in a savepoint rolled back at teardown, so examples are independent
        self.sid = transaction.savepoint()
        self.n = 0
        self.clock = timezone.now()
        self.accounts = [UserFactory().balance_account for _ in range(2)]

    def key(self, prefix):
        self.n += 1
        return f"sm-{id(self)}-{prefix}-{self.n}"

    @rule(who=st.integers(0, 1), amount=FEN)
    def credit(self, who, amount):
        credit_lot(self.accounts[who], cny(amount), channel="alipay", idempotency_key=self.key("l"))

    @rule(
        who=st.integers(0, 1),
        amount=MICRO,
        kind=st.sampled_from(["trial", "discount"]),
        days=st.one_of(st.none(), st.integers(1, 40)),
    )
    def grant(self, who, amount, kind, days):
        expires = self.clock + timedelta(days=days) if days else None
        grant_funds(
            self.accounts[who],
            cny(amount),
            kind=kind,
            expires_at=expires,
            idempotency_key=self.key("g"),
        )

    @rule(who=st.integers(0, 1), amount=MICRO)
    def charge(self, who, amount):
        charge_usage(self.accounts[who], cny(amount), request_id=self.key("c"), model="m")

    @rule(who=st.integers(0, 1), amount=MICRO)
    def purchase(self, who, amount):
        # not covered: refused, nothing moves (checked by the invariants)
        with suppress(ValidationError):
            purchase_package(
                self.accounts[who], cny(amount), idempotency_key=self.key("p"), description="pkg"
            )

    @rule(data=st.data())
    def hold_and_maybe_release(self, data):
        lots = list(Lot.objects.filter(account__in=self.accounts, remaining_micro__gte=10_000))
        if not lots:
            return
        lot = data.draw(st.sampled_from(lots))
        fen = data.draw(st.integers(1, lot.remaining_micro // 10_000))
        hold = hold_lots_for_refund(
            lot.account, {lot.pk: fen * 10_000}, idempotency_key=self.key("h")
        )
        held = hold["held"].get(lot.pk, 0)  # arrears are settled from the refund first
        if held and data.draw(st.booleans()):
            release_refund_hold(lot, cny(Decimal(held) / 1_000_000), idempotency_key=self.key("r"))

    @rule(days=st.integers(1, 45))
    def time_passes(self, days):
        self.clock += timedelta(days=days)
        expire_due_grants(now=self.clock)

    @rule(data=st.data())
    def void_one(self, data):
        grants = list(self.accounts[0].grants.filter(state="active")[:5])
        if grants:
            void_grant(data.draw(st.sampled_from(grants)), reason="test")

    @rule(data=st.data())
    def reverse_one(self, data):
        txns = list(LedgerTransaction.objects.exclude(kind="reversal").filter(reversals=None)[:10])
        if txns:
            # refused when the money has moved on; then nothing moves
            with suppress(ValidationError):
                reverse_transaction(data.draw(st.sampled_from(txns)), reason="correction")

    def teardown(self):
        if hasattr(self, "sid"):
            transaction.savepoint_rollback(self.sid)

    @invariant()
    def books_balance(self):
        from billing.services.reconcile import reconcile

        assert sum(Posting.objects.values_list("amount_micro", flat=True)) == 0
        report = reconcile()
        assert report.ok, report.summary()
        for la in LedgerAccount.objects.filter(owner__isnull=False):
            if la.kind == "arrears":
                assert la.balance_micro <= 0
            else:
                assert la.balance_micro >= 0


@pytest.mark.django_db
def test_ledger_state_machine():
    """R-LED-1/R-LED-4/R-LED-6: zero-sum and cache == ledger after every random step."""
    LedgerMachine.TestCase.settings = settings(
        max_examples=int(os.environ.get("LEDGER_SM_EXAMPLES", "25")),
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(LedgerMachine, settings=LedgerMachine.TestCase.settings)
