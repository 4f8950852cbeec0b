"""Concurrency on PostgreSQL with real threads (R-LED-5, R-LED-6, R-USE-3, R-USE-5).

`charge_usage` (billing.services.settlement) meters one call and settles it at once
under the account's locks: the one-by-one way of charging. The gateway's path (meter,
then settle in chunks) is proved in test_settlement_pg.py."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from billing.micro import from_micro
from billing.models import LedgerTransaction, Lot, UsageEvent
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot
from billing.services.metering import ReportedUsage, record_usage
from billing.services.purchases import InsufficientBalance, purchase_package
from billing.services.settlement import charge_usage, run_settler
from tests.factories import UserFactory

from .conftest import assert_reconciled, cny, run_threads, summary
from .settlement_checks import assert_books_exact

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_many_threads_charging_one_account_never_overspend(account, api_key):
    """R-LED-6/R-USE-3: 12 threads × 3 calls on one account whose cash covers only part:
    every call is charged once, cash never goes below zero, the rest is exact arrears."""
    credit_lot(account, cny("5.00"), channel="alipay", idempotency_key="L1")
    credit_lot(account, cny("2.50"), channel="bank", idempotency_key="L2")

    def work(i):
        return [
            charge_usage(api_key, cny("0.333333"), request_id=f"t{i}-{j}", model="m").pk
            for j in range(3)
        ]

    results, errors = run_threads(12, work)
    assert not errors, errors
    assert len({pk for r in results for pk in r}) == 36
    total = Decimal("0.333333") * 36  # 11.999988
    s = summary(account)
    assert s["cash"] == 0 and s["available"] == 0
    assert s["arrears"] == total - Decimal("7.50")
    charges = UsageEvent.objects.all()
    assert sum(c.cash_micro for c in charges) == 7_500_000
    assert from_micro(sum(c.arrears_micro for c in charges)).amount == total - Decimal("7.50")
    assert all(lot.remaining_micro == 0 for lot in Lot.objects.all())
    assert_reconciled()


def test_replayed_request_id_under_concurrency_charges_once(account, api_key):
    """R-LED-5: eight threads sending the same request id: one charge, one transaction,
    everyone gets the same charge back."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")

    results, errors = run_threads(
        8, lambda i: charge_usage(api_key, cny("1.25"), request_id="dup", model="m").pk
    )
    assert not errors, errors
    assert len(set(results)) == 1
    assert UsageEvent.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind="usage").count() == 1
    assert summary(account)["cash"] == Decimal("8.75")
    assert_reconciled()


def test_ingestion_and_settlement_racing_one_account_never_overspend(account, api_key):
    """R-LED-6 / R-USE-3 / R-USE-5: eight threads ingest 25 calls each on one account
    while two settle chunks and two charge one by one: every call is charged exactly
    once, cash never goes below zero, the rest is exact arrears, books exact."""
    credit_lot(account, cny("5.00"), channel="alipay", idempotency_key="L1")
    ingesting = threading.Event()

    def work(i):
        if i < 8:
            ingesting.set()
            key = resolve_api_keys([api_key.raw])[api_key.raw]
            for j in range(25):
                (r,) = record_usage([ReportedUsage(f"i{i}-{j}", key, "m", 30_000)])
                assert r.status == "accepted"
            return 0
        if i < 10:
            ingesting.wait(30)
            return sum(run_settler(seconds=0) for _ in range(20))
        return [
            charge_usage(api_key, cny("0.03"), request_id=f"s{i}-{j}", model="m").pk
            for j in range(10)
        ]

    results, errors = run_threads(12, work)
    assert not errors, errors
    run_settler(seconds=0)
    assert UsageEvent.objects.count() == 220
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    s = summary(account)
    assert s["cash"] == 0 and s["arrears"] == Decimal("0.03") * 220 - Decimal("5.00")
    assert sum(c.cash_micro for c in UsageEvent.objects.all()) == 5_000_000
    # one transaction per charge_usage, plus the chunks that found events still pending
    assert assert_books_exact() >= 20


def test_concurrent_top_up_replays_make_one_lot(account):
    """R-LED-5: the same payment notification delivered 8 times at once credits one lot."""
    results, errors = run_threads(
        8,
        lambda i: credit_lot(account, cny("20"), channel="alipay", idempotency_key="trade-1").pk,
    )
    assert not errors, errors
    assert len(set(results)) == 1 and Lot.objects.count() == 1
    assert summary(account)["cash"] == 20
    assert_reconciled()


def test_concurrent_prepaid_purchases_only_what_is_covered(account):
    """R-USE-3/R-LED-6: eight concurrent package purchases of 4.00 on a 10.00 balance:
    exactly two succeed, the rest are refused and move nothing."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")

    def work(i):
        try:
            return purchase_package(
                account, cny("4"), idempotency_key=f"p{i}", description="pkg"
            ).pk
        except InsufficientBalance:
            return None

    results, errors = run_threads(8, work)
    assert not errors, errors
    assert len([r for r in results if r]) == 2
    assert summary(account)["cash"] == 2 and summary(account)["arrears"] == 0
    assert_reconciled()


def test_charge_and_top_up_race_keeps_arrears_exact(account, api_key):
    """R-USE-3/R-LED-6: top-ups racing with overdrawing charges: arrears is always paid
    first and the totals come out exact whatever the interleaving."""

    def work(i):
        if i % 2:
            return credit_lot(account, cny("1"), channel="alipay", idempotency_key=f"L{i}").pk
        return charge_usage(api_key, cny("1.5"), request_id=f"c{i}", model="m").pk

    results, errors = run_threads(10, work)
    assert not errors, errors
    s = summary(account)
    # 5 top-ups of 1.00, 5 charges of 1.50: the account ends 2.50 in arrears
    assert s["cash"] - s["arrears"] == Decimal("-2.5")
    assert_reconciled()
    with pytest.raises(ValidationError):
        purchase_package(account, cny("0.01"), idempotency_key="x", description="pkg")


def test_expiry_skips_accounts_busy_in_another_transaction(account):
    """R-LED-6: the expiry job never waits on (or double-spends with) a charge in
    flight: an account whose buckets are locked is skipped and picked up next run."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from billing.models import Grant
    from billing.services.engine import lock_buckets
    from billing.services.ledger import expire_due_grants, grant_funds

    grant = grant_funds(
        account, cny("2"), kind="trial", expires_at=timezone.now(), idempotency_key="G"
    )
    other = UserFactory().balance_account
    grant_funds(other, cny("3"), kind="trial", expires_at=timezone.now(), idempotency_key="G2")
    later_now = timezone.now() + timedelta(seconds=5)
    held, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                lock_buckets([account.pk])
                held.set()
                release.wait(30)
        finally:
            connection.close()

    t = threading.Thread(target=hold_lock)
    t.start()
    held.wait(30)
    try:
        assert expire_due_grants(now=later_now) == 1  # only the other account's grant
        grant.refresh_from_db()
        assert grant.state == "active" and grant.remaining_micro == 2_000_000
    finally:
        release.set()
        t.join(30)
    assert expire_due_grants(now=later_now) == 1
    assert Grant.objects.filter(state="expired").count() == 2
    assert_reconciled()


def test_expiry_does_not_wait_for_a_busy_account_with_pending_usage(account, api_key):
    """R-LED-6 / R-USE-5: the expiry sweep never waits on a transaction in flight, also
    when the busy account has pending usage to settle before its grant expires: that
    account is skipped (grant and events untouched) and done on a later run, where its
    events received before the expiry are paid by the grant."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from billing.models import Grant
    from billing.services.engine import lock_buckets
    from billing.services.ledger import expire_due_grants, grant_funds

    expires = timezone.now() + timedelta(hours=1)
    grant = grant_funds(account, cny("2"), kind="trial", expires_at=expires, idempotency_key="G")
    other = UserFactory().balance_account
    grant_funds(other, cny("3"), kind="trial", expires_at=expires, idempotency_key="G2")
    key = resolve_api_keys([api_key.raw])[api_key.raw]
    record_usage([ReportedUsage("before", key, "m", 500_000)])
    UsageEvent.objects.update(created_at=expires - timedelta(seconds=5))
    sweep_at = expires + timedelta(seconds=5)
    held, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                lock_buckets([account.pk])
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    held.wait(30)
    swept = []
    sweeper = threading.Thread(
        target=lambda: (swept.append(expire_due_grants(now=sweep_at)), connection.close())
    )
    try:
        sweeper.start()
        sweeper.join(5)
        waited = sweeper.is_alive()
    finally:
        release.set()
        holder.join(30)
        sweeper.join(30)
    assert not waited, "the expiry sweep waited for a busy account's lock"
    assert swept == [1]  # only the other account's grant
    grant.refresh_from_db()
    assert grant.state == "active" and grant.remaining_micro == 2_000_000
    assert expire_due_grants(now=sweep_at) == 1
    assert UsageEvent.objects.get().trial_micro == 500_000  # paid by the grant, settled first
    assert Grant.objects.filter(state="expired").count() == 2
    assert_books_exact()
