"""Money stuck in a dead grant (issue 13): a reversal never refills a grant that has since
ended; authorize never counts a grant past its expiry, swept or not."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Grant, LedgerAccount, LedgerTransaction, TxnKind
from billing.services.authorization import authorize
from billing.services.ledger import (
    credit_lot,
    expire_grant,
    grant_funds,
    reverse_transaction,
    void_grant,
)
from billing.services.reconcile import reconcile
from billing.services.settlement import charge_usage
from tests.factories import cny

pytestmark = pytest.mark.django_db


def _bucket(account, kind):
    return LedgerAccount.objects.get(owner_id=account.pk, kind=kind).balance_micro


def _expense():
    """Promotion expense as its postings sum (platform accounts keep no cached balance)."""
    from django.db.models import Sum

    from billing.chart import platform_account_id
    from billing.models import AccountKind, Posting

    account_id = platform_account_id(AccountKind.PROMOTION_EXPENSE)
    total = Posting.objects.filter(ledger_account_id=account_id).aggregate(s=Sum("amount_micro"))
    return total["s"] or 0


@pytest.fixture
def discount(account):
    return grant_funds(
        account,
        cny("5"),
        kind="discount",
        expires_at=timezone.now() + timedelta(days=3),
        idempotency_key="d1",
    )


def _usage_txn(charge):
    return LedgerTransaction.objects.get(pk=charge.transaction_id)


def test_reversing_a_charge_on_a_voided_grant_returns_it_to_promotion_expense(
    account, api_key, discount
):
    """Issue 13: the grant was voided after the charge; the reversal puts the grant's part
    back into promotion expense, not into the dead grant or the discount bucket."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    charge = charge_usage(api_key, cny("7"), request_id="r1", model="m")  # 5 discount + 2 cash
    assert charge.discount_micro == 5_000_000
    void_grant(discount, reason="withdrawn")  # nothing left to void
    expense_before = _expense()
    reverse_transaction(_usage_txn(charge), reason="gateway double-billed")
    discount.refresh_from_db()
    assert discount.state == "voided" and discount.remaining_micro == 0
    assert _bucket(account, "discount") == 0
    assert _bucket(account, "cash") == 10_000_000  # the cash part is back in its lot
    assert _expense() == expense_before + 5_000_000
    assert authorize(api_key).available.amount == 10
    assert reconcile().ok


def test_reversing_a_charge_on_an_expired_grant_returns_it_to_promotion_expense(
    account, api_key, discount
):
    """Issue 13: the grant expired (swept) after the charge: no refill of the dead grant."""
    charge = charge_usage(api_key, cny("2"), request_id="r1", model="m")
    later = timezone.now() + timedelta(days=4)
    expire_grant(discount, now=later)
    discount.refresh_from_db()
    assert discount.state == "expired"
    reverse_transaction(_usage_txn(charge), reason="refund the call")
    discount.refresh_from_db()
    assert discount.remaining_micro == 0 and discount.state == "expired"
    assert _bucket(account, "discount") == 0
    assert reconcile().ok


def test_reversing_a_charge_on_a_live_grant_still_refills_it(account, api_key, discount):
    """R-LED-2: while the grant lives, a reversal puts the money back where it came from."""
    charge = charge_usage(api_key, cny("2"), request_id="r1", model="m")
    reverse_transaction(_usage_txn(charge), reason="refund the call")
    discount.refresh_from_db()
    assert discount.remaining_micro == 5_000_000
    assert _bucket(account, "discount") == 5_000_000


def test_reversing_a_void_still_revives_the_grant(account, discount):
    """R-LED-2: undoing a mistaken void is what brings a grant back."""
    void_grant(discount, reason="by mistake")
    txn = LedgerTransaction.objects.get(kind=TxnKind.VOID)
    reverse_transaction(txn, reason="the void was a mistake")
    discount.refresh_from_db()
    assert discount.state == "active" and discount.remaining_micro == 5_000_000


def test_authorize_ignores_grants_past_expiry_before_the_sweep(account, api_key):
    """Issue 13: a grant whose expiry has passed but the job has not run yet is not money."""
    g = grant_funds(
        account,
        cny("5"),
        kind="trial",
        expires_at=timezone.now() + timedelta(seconds=1),
        idempotency_key="t1",
    )
    assert authorize(api_key).allowed
    Grant.objects.filter(pk=g.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    result = authorize(api_key)
    assert (result.allowed, result.code, result.available.amount) == (
        False,
        "insufficient_balance",
        0,
    )
