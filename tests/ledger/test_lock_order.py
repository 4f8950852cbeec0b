"""The ledger's lock order against standing changes, on PostgreSQL with real threads
(R-ACC-8, R-LED-6; billing/README.md, "Lock order").

A money movement for an account locks the balance account row first and decides on
the standing it reads under that lock; a freeze (core.workflow.apply_transition)
locks the same row FOR UPDATE. So a one-by-one charge (settlement.charge_usage) or a
purchase either commits before the freeze takes its lock, or waits for the freeze and
is refused with `account_frozen`.

The gateway's ingestion (metering.record_usage) takes no locks (R-USE-1, R-USE-5): it
decides on the key state and standing read with the key, at request time, so it is
refused from the moment a freeze commits (R-USE-6) and accepts while a freeze is still
uncommitted. An event accepted is usage that happened: the settler charges it even if
the account is frozen by the time it settles (settlement applies no standing rule; the
freeze stops new usage, not the bill for past usage).
"""

import threading
import time

import pytest
from django.db import connection, transaction

from accounts.models import BalanceAccount
from accounts.services import change_standing
from billing.models import LedgerTransaction, Posting, UsageEvent
from billing.services.authorization import resolve_api_keys
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot
from billing.services.metering import ReportedUsage, record_usage
from billing.services.purchases import purchase_package
from billing.services.settlement import charge_usage, run_settler

from .conftest import cny, run_threads, summary
from .settlement_checks import assert_books_exact


def _waiting_on_locks() -> int:
    """Backends of this database waiting for a row or tuple lock right now."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0]


def _until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)
def test_charges_wait_for_an_open_freeze_then_are_refused(account, api_key):
    """R-ACC-8 / R-LED-6: while a freeze is in flight (its transaction holds the balance
    account row), one-by-one charges and a prepaid purchase that all read the account as
    active beforehand block on that row instead of charging; when the freeze commits
    they re-read the standing under the lock and are refused with account_frozen, and
    nothing they would have moved moves.

    R-USE-6 (issue 24 point 2): ingestion's INSERT is conditional on the standing at
    insert time under KEY SHARE of the account row: an event reported while the freeze
    is uncommitted waits for it, and once the freeze commits it is refused with
    account_frozen, storing nothing; one reported after the commit is refused too."""
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="L")
    stale_key = resolve_api_keys([api_key.raw])[api_key.raw]  # read before the freeze
    stale_account = BalanceAccount.objects.get(pk=account.pk)
    assert stale_key.standing == "active" and stale_account.may("consume")
    postings, txns = Posting.objects.count(), LedgerTransaction.objects.count()
    held, release = threading.Event(), threading.Event()

    def freeze_and_hold():
        try:
            with transaction.atomic():
                change_standing(
                    account, "freeze", reason="order", authority="Court", document_number="7"
                )
                held.set()
                release.wait(30)
        finally:
            connection.close()

    freezer = threading.Thread(target=freeze_and_hold)
    freezer.start()
    assert held.wait(30)
    outcomes = [None] * 5

    def attempt(i):
        try:
            if i < 4:
                charge_usage(stale_key, cny("1.25"), request_id=f"c{i}", model="m")
            else:
                purchase_package(stale_account, cny("5"), idempotency_key="p", description="pkg")
            outcomes[i] = "charged"
        except LedgerError as exc:
            outcomes[i] = exc.code
        finally:
            connection.close()

    workers = [threading.Thread(target=attempt, args=(i,)) for i in range(5)]
    try:
        for w in workers:
            w.start()
        # every attempt is blocked on the account row the freeze holds, none has finished
        assert _until(lambda: _waiting_on_locks() >= 5), "charges did not wait for the freeze"
        assert outcomes == [None] * 5
        assert not UsageEvent.objects.exists()
        # ingestion reads the standing as still active, then its INSERT waits on the row
        fresh = resolve_api_keys([api_key.raw])[api_key.raw]
        during = []

        def ingest():
            try:
                during.extend(record_usage([ReportedUsage("during", fresh, "m", 1_250_000)]))
            finally:
                connection.close()

        ingester = threading.Thread(target=ingest)
        ingester.start()
        assert _until(lambda: _waiting_on_locks() >= 6), "ingestion did not wait"
        assert not during
    finally:
        release.set()
        freezer.join(30)
        for w in workers:
            w.join(30)
    ingester.join(30)
    assert outcomes == ["account_frozen"] * 5
    assert [(r.status, r.code) for r in during] == [("error", "account_frozen")]
    (after,) = record_usage(
        [ReportedUsage("after", resolve_api_keys([api_key.raw])[api_key.raw], "m", 1)]
    )
    assert (after.status, after.code) == ("error", "account_frozen")
    assert not UsageEvent.objects.exists()
    assert (Posting.objects.count(), LedgerTransaction.objects.count()) == (postings, txns)

    assert run_settler(seconds=0) == 0  # nothing was stored, nothing is billed
    account.refresh_from_db()
    assert account.standing == "frozen"
    assert summary(account)["cash"] == cny("50").amount


@pytest.mark.django_db(transaction=True)
def test_no_usage_is_taken_after_a_racing_freeze_commits(account, api_key):
    """R-ACC-8 / R-LED-6 / R-USE-6: a burst of one-by-one charges and of ingestion
    (single events and batches, each resolving the key as the gateway does) races a
    freeze. Every one-by-one charge that committed was written before the freeze took the
    account row (its created_at precedes the freeze's standing_changed_at and audit
    record); no ingestion request that started after the freeze committed was accepted
    (each batch all or nothing: one standing per request); every attempt after it is
    refused with account_frozen; everything accepted is settled and the money charged is
    exactly what left the balance."""
    from django.contrib.contenttypes.models import ContentType

    from core.models import AuditRecord

    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    started = threading.Event()
    frozen_at = []  # monotonic time the freeze had committed by

    def work(i):
        if i == 0:  # the freeze, once the burst is under way
            started.wait(30)
            change_standing(
                account, "freeze", reason="order", authority="Court", document_number="8"
            )
            frozen_at.append(time.monotonic())
            return "froze"
        charged, late = 0, []
        for n in range(400):
            begun = time.monotonic()
            key = resolve_api_keys([api_key.raw])[api_key.raw]
            try:
                if i % 3 == 0:
                    events = [ReportedUsage(f"b{i}-{n}-{j}", key, "m", 10_000) for j in range(5)]
                    rows = record_usage(events)
                    codes = {r.code for r in rows if r.status == "error"}
                    if codes:
                        assert codes == {"account_frozen"}
                        assert all(r.status == "error" for r in rows)  # one standing a batch
                        return ("refused", charged, late)
                    charged += 5
                    late.append(begun)
                elif i % 3 == 1:
                    (row,) = record_usage([ReportedUsage(f"s{i}-{n}", key, "m", 10_000)])
                    if row.status == "error":
                        assert row.code == "account_frozen", row.code
                        return ("refused", charged, late)
                    charged += 1
                    late.append(begun)
                else:
                    charge_usage(key, cny("0.01"), request_id=f"c{i}-{n}", model="m")
                    charged += 1
            except LedgerError as exc:
                assert exc.code == "account_frozen", exc.code
                return ("refused", charged, late)
            # the freeze waits for a one-by-one charge to have committed, so every kind
            # of writer is under way when it comes (not only the quick batches)
            if i % 3 == 2 and charged >= 2:
                started.set()
        return ("ran out", charged, late)

    results, errors = run_threads(7, work)
    assert not errors, errors
    assert results[0] == "froze"
    assert all(r[0] == "refused" for r in results[1:]), results  # everyone met the freeze
    # no ingestion request begun after the freeze had committed was accepted
    assert all(begun < frozen_at[0] for r in results[1:] for begun in r[2])
    total = sum(r[1] for r in results[1:])
    assert UsageEvent.objects.count() == total > 0

    account.refresh_from_db()
    assert account.standing == "frozen"
    audit = AuditRecord.objects.get(
        content_type=ContentType.objects.get_for_model(BalanceAccount),
        object_id=str(account.pk),
        action="freeze",
    )
    one_by_one = UsageEvent.objects.filter(request_id__startswith="c").order_by("-created_at")
    assert one_by_one.exists()
    assert one_by_one.first().created_at < account.standing_changed_at <= audit.at

    run_settler(seconds=0)  # accepted before the freeze: billed, frozen or not
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    assert summary(account)["cash"] == cny("100").amount - total * cny("0.01").amount
    assert_books_exact()
