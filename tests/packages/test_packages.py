"""Resource packages (R-PKG-1 … R-PKG-3) through the services: buying, paying usage,
expiry, refusals."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import (
    HoldingState,
    LedgerTransaction,
    PackageHolding,
    Posting,
    TxnKind,
    UsageEvent,
)
from billing.services.authorization import authorize, resolve_api_keys
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.packages import buy_package, expire_due_packages, send_expiry_reminders
from billing.services.settlement import charge_usage, run_settler
from notices.models import Notice
from tests.ledger.conftest import assert_reconciled, cny, later, summary

from .helpers import make_package


def test_buying_is_one_transaction_drawn_in_deduction_order(account):
    """R-PKG-2: the price is drawn trial → discount → cash (R-USE-2) in one ledger
    transaction; the face value becomes a holding in the package bucket."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    grant_funds(account, cny("3"), kind="trial", expires_at=later(), idempotency_key="T")
    pkg = make_package()
    holding = buy_package(account=account, package_id=pkg.pk, idempotency_key="k1")
    holding.refresh_from_db()
    assert holding.remaining_micro == 10_000_000
    assert holding.state == HoldingState.ACTIVE
    txns = LedgerTransaction.objects.filter(account=account, kind=TxnKind.PURCHASE)
    assert txns.count() == 1
    rows = Posting.objects.filter(transaction=txns[0]).values_list("bucket", "amount_micro")
    buckets = dict(rows)
    assert buckets["trial"] == -3_000_000 and buckets["cash"] == -5_000_000
    assert buckets["package"] == 10_000_000
    assert buckets["promotion_expense"] == -2_000_000  # face value the price does not pay
    s = summary(account)
    assert s["trial"] == 0 and s["cash"] == cny("5").amount
    assert_reconciled(account)


def test_a_double_click_buys_once(account):
    """R-PKG-2: the same idempotency key (one form, clicked twice) buys once."""
    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L")
    pkg = make_package()
    a = buy_package(account=account, package_id=pkg.pk, idempotency_key="same")
    b = buy_package(account=account, package_id=pkg.pk, idempotency_key="same")
    assert a.pk == b.pk
    assert PackageHolding.objects.filter(account=account).count() == 1
    assert summary(account)["cash"] == cny("12").amount


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("not_on_sale", "not_on_sale"),
        ("ended", "not_on_sale"),
        ("limit", "per_user_limit"),
        ("poor", "insufficient_balance"),
        ("unverified", "email_unverified"),
        ("suspended", "account_suspended"),
        ("arrears", "arrears"),
    ],
)
def test_every_refusal_has_its_code_and_moves_nothing(user, account, setup, code):
    """R-PKG-2, R-USE-3: refused with a clear reason, nothing moves."""
    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L")
    pkg = make_package(per_user_limit=1)
    if setup == "not_on_sale":
        pkg.sale_starts_at = timezone.now() + timedelta(days=1)
        pkg.save()
    elif setup == "ended":
        pkg.sale_ends_at = timezone.now() - timedelta(seconds=1)
        pkg.save()
    elif setup == "limit":
        buy_package(account=account, package_id=pkg.pk, idempotency_key="first")
    elif setup == "poor":
        pkg = make_package(price=cny("50.00"))
    elif setup == "unverified":
        user.email_verified_at = None
        user.save(update_fields=["email_verified_at"])
    elif setup == "suspended":
        type(account).objects.filter(pk=account.pk).update(standing="suspended")
        account.refresh_from_db()
    elif setup == "arrears":
        charge_usage(account, cny("25"), request_id="big", model="other")
    before = summary(account)
    holdings = PackageHolding.objects.count()
    with pytest.raises(LedgerError) as exc:
        buy_package(account=account, package_id=pkg.pk, idempotency_key="try")
    assert exc.value.code == code
    assert summary(account) == before
    assert PackageHolding.objects.count() == holdings
    assert_reconciled(account)


def test_usage_of_a_covered_model_is_paid_by_the_package_first(account):
    """R-PKG-3: a covered model's call is paid by the package before trial and cash;
    the rest follows R-USE-2; another model's call never touches the package."""
    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L")
    pkg = make_package()
    holding = buy_package(account=account, package_id=pkg.pk, idempotency_key="k")
    grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="T")
    ev = charge_usage(account, cny("4"), request_id="a", model="glm-4")
    assert ev.package_micro == 4_000_000 and ev.trial_micro == 0
    assert ev.split[0]["bucket"] == "package" and ev.split[0]["package"] == holding.pk
    ev = charge_usage(account, cny("7"), request_id="b", model="glm-4")
    assert (ev.package_micro, ev.trial_micro, ev.cash_micro) == (6_000_000, 1_000_000, 0)
    ev = charge_usage(account, cny("1"), request_id="c", model="other")
    assert ev.package_micro == 0 and ev.cash_micro == 1_000_000
    holding.refresh_from_db()
    assert holding.remaining_micro == 0 and holding.state == HoldingState.USED_UP
    assert_reconciled(account)


def test_soonest_expiring_package_pays_first(account):
    """R-PKG-3: of two packages covering the model, the one expiring first pays."""
    credit_lot(account, cny("30"), channel="alipay", idempotency_key="L")
    long = make_package(validity_days=60)
    short = make_package(validity_days=10)
    h_long = buy_package(account=account, package_id=long.pk, idempotency_key="1")
    h_short = buy_package(account=account, package_id=short.pk, idempotency_key="2")
    ev = charge_usage(account, cny("1"), request_id="a", model="glm-4")
    assert ev.split[0]["package"] == h_short.pk != h_long.pk


def test_authorize_counts_the_models_packages(account, api_key):
    """R-PKG-3: authorize's available figure for a model includes its packages."""
    credit_lot(account, cny("8"), channel="alipay", idempotency_key="L")
    pkg = make_package()
    buy_package(account=account, package_id=pkg.pk, idempotency_key="k")
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    assert authorize(ref).code == "insufficient_balance"  # cash is gone, no model named
    ok = authorize(ref, "glm-4")
    assert ok.allowed and ok.available == cny("10")
    assert authorize(ref, "other").code == "insufficient_balance"


def test_expiry_settles_first_then_moves_the_rest_to_revenue(user, account, api_key):
    """R-PKG-3: an event received before the expiry is paid by the package even when
    settled after it; the unused face value then expires (one transaction, revenue)."""
    credit_lot(account, cny("8"), channel="alipay", idempotency_key="L")
    pkg = make_package()
    holding = buy_package(account=account, package_id=pkg.pk, idempotency_key="k")
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    record_usage([ReportedUsage("before", ref, "glm-4", 3_000_000)])
    PackageHolding.objects.filter(pk=holding.pk).update(expires_at=timezone.now())
    record_usage([ReportedUsage("after", ref, "glm-4", 1_000_000)])
    assert expire_due_packages() == 1
    before = UsageEvent.objects.get(request_id="before")
    after = UsageEvent.objects.get(request_id="after")
    assert before.package_micro == 3_000_000
    assert after.package_micro == 0 and after.arrears_micro == 1_000_000
    holding.refresh_from_db()
    assert holding.state == HoldingState.EXPIRED and holding.remaining_micro == 0
    txn = LedgerTransaction.objects.get(account=account, kind=TxnKind.PACKAGE_EXPIRY)
    rows = dict(Posting.objects.filter(transaction=txn).values_list("bucket", "amount_micro"))
    assert rows == {"package": -7_000_000, "revenue": 7_000_000}
    assert Notice.objects.filter(user=user, kind="package_expired").count() == 1
    assert expire_due_packages() == 0
    assert_reconciled(account)


def test_reminder_three_days_before_expiry_once(user, account):
    """R-PKG-3: one reminder 3 days before the package expires."""
    credit_lot(account, cny("8"), channel="alipay", idempotency_key="L")
    holding = buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    assert send_expiry_reminders() == 0
    PackageHolding.objects.filter(pk=holding.pk).update(
        expires_at=timezone.now() + timedelta(days=2)
    )
    assert send_expiry_reminders() == 1
    assert send_expiry_reminders() == 0
    assert Notice.objects.filter(user=user, kind="package_expiring").count() == 1


def test_chunked_settlement_with_packages_equals_one_by_one(account, api_key):
    """R-USE-5 with R-PKG-3: a batch settled in chunks pays as one by one would."""
    credit_lot(account, cny("8"), channel="alipay", idempotency_key="L")
    buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    models = ["glm-4", "other", "glm-4"]
    record_usage([ReportedUsage(f"e{i}", ref, models[i % 3], 700_000) for i in range(20)])
    run_settler(chunk=3)
    paid = sum(UsageEvent.objects.filter(model="glm-4").values_list("package_micro", flat=True))
    covered = 700_000 * sum(1 for i in range(20) if models[i % 3] == "glm-4")
    assert paid == min(covered, 10_000_000)
    assert_reconciled(account)


def test_package_money_is_consumed_not_refundable_but_invoiceable(account):
    """R-PKG-2, R-REF-2: the cash spent on a package is consumed money: refunds leave
    it out, invoices count it as consumed cash."""
    from invoices.selectors import invoiceable_for
    from refunds.selectors import refund_preview

    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L")
    buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    assert refund_preview(account).total == cny("12")
    assert invoiceable_for(account).consumed == cny("8")
