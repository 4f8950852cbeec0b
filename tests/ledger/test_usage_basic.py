"""Charging usage: deduction order, arrears, replays (R-USE-2, R-USE-3, R-LED-5)."""

import pytest
from django.core.exceptions import ValidationError

from billing.models import Posting, UsageEvent
from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage

from .conftest import assert_reconciled, cny, later, summary


def test_deduction_order_trial_then_discount_then_cash(account):
    """R-USE-2: trial by soonest expiry, then discount by soonest expiry then age, then
    cash lots oldest first; the charge records each grant and lot it drew on."""
    lot_old = credit_lot(account, cny("1"), channel="alipay", idempotency_key="L-old")
    lot_new = credit_lot(account, cny("1"), channel="alipay", idempotency_key="L-new")
    d_late = grant_funds(
        account, cny("1"), kind="discount", expires_at=later(20), idempotency_key="d1"
    )
    d_none = grant_funds(account, cny("1"), kind="discount", expires_at=None, idempotency_key="d2")
    d_soon = grant_funds(
        account, cny("1"), kind="discount", expires_at=later(5), idempotency_key="d3"
    )
    t_late = grant_funds(account, cny("1"), kind="trial", expires_at=later(9), idempotency_key="t1")
    t_soon = grant_funds(account, cny("1"), kind="trial", expires_at=later(2), idempotency_key="t2")
    charge = charge_usage(account, cny("6.5"), request_id="big", model="m")
    drawn = [(s["bucket"], s.get("grant") or s.get("lot"), s["amount"]) for s in charge.split]
    assert drawn == [
        ("trial", t_soon.pk, "1.000000"),
        ("trial", t_late.pk, "1.000000"),
        ("discount", d_soon.pk, "1.000000"),
        ("discount", d_late.pk, "1.000000"),
        ("discount", d_none.pk, "1.000000"),
        ("cash", lot_old.pk, "1.000000"),
        ("cash", lot_new.pk, "0.500000"),
    ]
    assert (charge.trial_micro, charge.discount_micro, charge.cash_micro) == (
        2_000_000,
        3_000_000,
        1_500_000,
    )
    lot_new.refresh_from_db()
    assert lot_new.remaining.amount == 0.5
    assert_reconciled(account)


def test_postpaid_overdraft_becomes_arrears_and_top_up_pays_it_first(account):
    """R-USE-3: usage beyond the balance is still charged; the excess is arrears; the
    next top-up pays the arrears first and only the rest lands in the lot."""
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L1")
    charge = charge_usage(account, cny("1.75"), request_id="over", model="m")
    assert charge.cash_micro == 1_000_000 and charge.arrears_micro == 750_000
    s = summary(account)
    assert s["arrears"] == cny("0.75").amount and s["available"] == 0
    lot = credit_lot(account, cny("10"), channel="bank", idempotency_key="L2")
    assert lot.remaining.amount == cny("9.25").amount
    buckets = {p.bucket: p.amount_micro for p in Posting.objects.filter(lot=lot)}
    assert buckets == {"arrears": 750_000, "cash": 9_250_000}
    s = summary(account)
    assert s["arrears"] == 0 and s["available"] == cny("9.25").amount
    assert_reconciled(account)


def test_replayed_request_id_moves_nothing(account):
    """R-LED-5: a replayed usage request id returns the first charge and moves nothing;
    the same request id with another amount is a conflict (R-USE-1) and moves nothing."""
    from billing.services.engine import LedgerError

    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    first = charge_usage(account, cny("1.234567"), request_id="rq", model="m")
    count = Posting.objects.count()
    again = charge_usage(account, cny("1.234567"), request_id="rq", model="other")
    assert again.pk == first.pk and again.replayed and not first.replayed
    with pytest.raises(LedgerError) as refused:
        charge_usage(account, cny("9"), request_id="rq", model="m")
    assert refused.value.code == "request_id_conflict"
    assert Posting.objects.count() == count and UsageEvent.objects.count() == 1
    assert summary(account)["cash"] == cny("3.765433").amount


@pytest.mark.parametrize(
    "amount,code",
    [
        ("0.0000001", "too_many_decimals"),
        ("0", "non_positive_amount"),
        ("-1", "non_positive_amount"),
    ],
)
def test_charge_refuses_bad_amounts(account, amount, code):
    """R-LED-3: usage amounts have at most 6 places and are positive; nothing moves."""
    with pytest.raises(ValidationError) as exc:
        charge_usage(account, cny(amount), request_id="bad", model="m")
    assert exc.value.code == code
    assert not Posting.objects.exists() and not UsageEvent.objects.exists()
