"""The ledger moves of disputes (billing/services/dispute_funds.py): double entry,
cash only, keyed replays, refusals that move nothing (R-DIS-3, R-DIS-4, R-DIS-5)."""

import pytest

from billing.models import LedgerTransaction, Posting, TxnKind
from billing.services import dispute_funds
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot
from tests.factories import cny

from .conftest import assert_books_balance, consume, money, trial_for

pytestmark = pytest.mark.django_db


def test_refund_takes_cash_only_and_a_replay_moves_nothing(account):
    """R-DIS-3 / R-DIS-4: cash only (trial stays), sub-fen cash stays in the lot, the
    shortfall is debt; the same key returns the first result."""
    credit_lot(account, cny("10.00"), channel="bank", idempotency_key="a")
    trial_for(account, "5.00")
    consume(account, "5.000001")  # trial first, then 0.000001 of cash
    trial_for(account, "7.00")
    first = dispute_funds.refund_dispute(account, 12_000_000, idempotency_key="d1")
    assert first["paid"] == 9_990_000 and first["debt"] == 2_010_000
    assert money(account)["trial"] == 7  # never used for the rights holder
    again = dispute_funds.refund_dispute(account, 12_000_000, idempotency_key="d1")
    assert (again["paid"], again["debt"], again["txn"].pk) == (
        first["paid"],
        first["debt"],
        first["txn"].pk,
    )
    assert LedgerTransaction.objects.filter(kind=TxnKind.DISPUTE_REFUND).count() == 1
    assert dispute_funds.debt_micro(account.pk) == 2_010_000
    assert_books_balance()


@pytest.mark.parametrize("micro", [0, -10_000, 10_001])
def test_amounts_must_be_positive_whole_fen(account, micro):
    """R-DIS-3: refunds, debt ends and payouts move positive whole fen only."""
    before = Posting.objects.count()
    with pytest.raises(LedgerError):
        dispute_funds.refund_dispute(account, micro, idempotency_key="x")
    with pytest.raises(LedgerError):
        dispute_funds.end_dispute_debt(account, micro, idempotency_key="x")
    with pytest.raises(LedgerError):
        dispute_funds.pay_rights_holder(account, micro, channel="bank", idempotency_key="x")
    assert Posting.objects.count() == before


def test_debt_end_above_the_debt_and_unknown_channel_are_refused(account):
    """R-DIS-5: a debt cannot end for more than is owed; a payout needs a known channel."""
    dispute_funds.refund_dispute(account, 5_000_000, idempotency_key="d2")  # all debt
    with pytest.raises(LedgerError) as exc:
        dispute_funds.end_dispute_debt(account, 6_000_000, idempotency_key="e")
    assert exc.value.code == "no_such_debt"
    with pytest.raises(LedgerError) as exc:
        dispute_funds.pay_rights_holder(account, 10_000, channel="paypal", idempotency_key="p")
    assert exc.value.code == "unknown_channel"
    dispute_funds.end_dispute_debt(account, 5_000_000, idempotency_key="e")
    dispute_funds.end_dispute_debt(account, 5_000_000, idempotency_key="e")  # replay
    assert dispute_funds.debt_micro(account.pk) == 0
    assert_books_balance()


def test_credit_lot_pays_arrears_then_debt_then_cash(account):
    """R-DIS-3: a top-up pays arrears first, then dispute debt (passed to the payable),
    and only the rest becomes the lot's cash."""
    consume(account, "2.00")  # arrears 2
    dispute_funds.refund_dispute(account, 3_000_000, idempotency_key="d3")  # debt 3
    lot = credit_lot(account, cny("10.00"), channel="alipay", idempotency_key="t")
    assert lot.remaining_micro == 5_000_000
    buckets = {
        p.bucket: p.amount_micro
        for p in Posting.objects.filter(transaction__kind="top_up", lot=lot)
    }
    assert buckets == {"arrears": 2_000_000, "dispute_debt": 3_000_000, "cash": 5_000_000}
    assert dispute_funds.debt_collections([account.pk]) == [
        (LedgerTransaction.objects.get(idempotency_key="lot:t").pk, account.pk, 3_000_000)
    ]
    assert money(account)["cash"] == 5
    assert_books_balance()
