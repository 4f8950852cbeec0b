"""PostgreSQL races with real threads (R-PKG-2, R-PKG-3, R-USE-5, R-REF-3)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import PackageHolding, UsageEvent
from billing.services.authorization import resolve_api_keys
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot
from billing.services.metering import ReportedUsage, record_usage
from billing.services.packages import buy_package, expire_due_packages
from billing.services.refund_holds import hold_lots_for_refund
from tests.ledger.conftest import assert_reconciled, cny, run_threads, summary

from .helpers import make_package

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_two_purchases_of_the_last_allowed_package_sell_one(account):
    """R-PKG-2: two concurrent purchases of a package limited to one per user (different
    forms): exactly one is bought, the other refused with per_user_limit."""
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="L")
    pkg = make_package(per_user_limit=1)

    def work(i):
        try:
            return buy_package(account=account, package_id=pkg.pk, idempotency_key=f"f{i}").pk
        except LedgerError as exc:
            return exc.code

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(map(str, results))[-1] == "per_user_limit"
    assert PackageHolding.objects.count() == 1
    assert summary(account)["cash"] == cny("42").amount
    assert_reconciled()


def test_a_purchase_racing_a_refund_hold_never_spends_held_money(account):
    """R-PKG-2, R-REF-3: a purchase and a refund hold of the same cash at once: one of
    them wins, the books stay exact and no money is spent twice."""
    lot = credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    pkg = make_package()

    def work(i):
        try:
            if i == 0:
                buy_package(account=account, package_id=pkg.pk, idempotency_key="buy")
                return "bought"
            hold_lots_for_refund(account, {lot.pk: 10_000_000}, idempotency_key="refund")
            return "held"
        except LedgerError as exc:
            return exc.code

    results, errors = run_threads(2, work)
    assert not errors, errors
    s = summary(account)
    if results[0] == "bought":  # the hold then found only 2.00 of cash: refused
        assert results[1] != "held" and s["cash"] == cny("2").amount
    else:
        assert results == ["insufficient_balance", "held"] and s["cash"] == 0
    assert_reconciled()


def test_usage_racing_package_expiry(account, api_key):
    """R-PKG-3: events received before the expiry are paid by the package even when
    the expiry job runs while they are being recorded; none received after is."""
    credit_lot(account, cny("8"), channel="alipay", idempotency_key="L")
    holding = buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    expiry = timezone.now() + timedelta(milliseconds=300)
    PackageHolding.objects.filter(pk=holding.pk).update(expires_at=expiry)

    def work(i):
        if i == 0:
            import time

            while timezone.now() <= expiry:
                time.sleep(0.01)
            return expire_due_packages()
        for j in range(40):
            record_usage([ReportedUsage(f"e{i}-{j}", ref, "glm-4", 50_000)])
        return 0

    results, errors = run_threads(3, work)
    assert not errors, errors
    if results[0] == 0:  # the gate was busy: the next run ends it
        assert expire_due_packages() == 1
    holding.refresh_from_db()
    assert holding.state == "expired"
    from billing.services.settlement import run_settler

    run_settler()
    for ev in UsageEvent.objects.all():
        if ev.created_at < expiry:
            assert ev.package_micro == ev.amount_micro, ev.request_id
        else:
            assert ev.package_micro == 0, ev.request_id
    assert_reconciled()
