"""The ledger's lock order against standing changes, on PostgreSQL with real threads
(R-ACC-8, R-LED-6; billing/README.md, "Lock order").

A money movement for an account locks the balance account row first and decides on
the standing it reads under that lock; a freeze (core.workflow.apply_transition)
locks the same row FOR UPDATE. So a charge either commits before the freeze takes
its lock, or waits for the freeze and is refused with `account_frozen`.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from accounts.models import BalanceAccount
from accounts.services import change_standing
from billing.models import Charge, LedgerTransaction, Posting
from billing.services.authorization import resolve_api_keys
from billing.services.charging import UsageEvent, charge_usage, charge_usage_batch
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot
from billing.services.purchases import purchase_package

from .conftest import assert_reconciled, cny, run_threads, summary


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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_charges_wait_for_an_open_freeze_then_are_refused(account, api_key):
    """R-ACC-8 / R-LED-6: while a freeze is in flight (its transaction holds the balance
    account row), single charges, a batch and a prepaid purchase that all read the
    account as active beforehand block on that row instead of charging; when the
    freeze commits they re-read the standing under the lock and are refused with
    account_frozen. Nothing moves: no charge, no posting, balances unchanged."""
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="L")
    stale_key = resolve_api_keys([api_key.raw])[api_key.raw]  # read before the freeze
    stale_account = BalanceAccount.objects.get(pk=account.pk)
    assert stale_key.standing == "active" and stale_account.can_consume
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
    outcomes = [None] * 6

    def attempt(i):
        try:
            if i < 4:
                charge_usage(stale_key, cny("1.25"), request_id=f"c{i}", model="m")
            elif i == 4:
                (row,) = charge_usage_batch([UsageEvent("b0", stale_key, "m", 1_250_000)])
                outcomes[i] = row.error[0] if row.error else "charged"
                return
            else:
                purchase_package(stale_account, cny("5"), idempotency_key="p", description="pkg")
            outcomes[i] = "charged"
        except LedgerError as exc:
            outcomes[i] = exc.code
        finally:
            connection.close()

    workers = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    try:
        for w in workers:
            w.start()
        # every attempt is blocked on the account row the freeze holds, none has finished
        assert _until(lambda: _waiting_on_locks() >= 6), "charges did not wait for the freeze"
        assert outcomes == [None] * 6
        assert not Charge.objects.exists()
    finally:
        release.set()
        freezer.join(30)
        for w in workers:
            w.join(30)
    assert outcomes == ["account_frozen"] * 6
    assert not Charge.objects.exists()
    assert (Posting.objects.count(), LedgerTransaction.objects.count()) == (postings, txns)
    assert summary(account)["cash"] == 50
    account.refresh_from_db()
    assert account.standing == "frozen"
    assert_reconciled()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_charge_commits_after_a_racing_freeze(account, api_key):
    """R-ACC-8 / R-LED-6: a burst of concurrent charges (single calls and batches, each
    resolving the key as the gateway does) races a freeze. Every charge that committed
    was written before the freeze took the account row (its created_at precedes the
    freeze's standing_changed_at and audit record); every attempt after it is refused
    with account_frozen; the money charged is exactly what left the balance."""
    from django.contrib.contenttypes.models import ContentType

    from core.models import AuditRecord

    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    started = threading.Event()

    def work(i):
        if i == 0:  # the freeze, once the burst is under way
            started.wait(30)
            change_standing(
                account, "freeze", reason="order", authority="Court", document_number="8"
            )
            return "froze"
        charged = 0
        for n in range(400):
            key = resolve_api_keys([api_key.raw])[api_key.raw]
            try:
                if i % 3 == 0:
                    events = [UsageEvent(f"b{i}-{n}-{j}", key, "m", 10_000) for j in range(5)]
                    rows = charge_usage_batch(events)
                    codes = {r.error[0] for r in rows if r.error}
                    if codes:
                        assert codes == {"account_frozen"} and len(codes) == 1
                        assert all(r.error for r in rows)  # the whole batch saw one standing
                        return ("refused", charged)
                    charged += 5
                else:
                    charge_usage(key, cny("0.01"), request_id=f"s{i}-{n}", model="m")
                    charged += 1
            except LedgerError as exc:
                assert exc.code == "account_frozen", exc.code
                return ("refused", charged)
            if charged >= 5:
                started.set()
        return ("ran out", charged)

    results, errors = run_threads(7, work)
    assert not errors, errors
    assert results[0] == "froze"
    assert all(r[0] == "refused" for r in results[1:]), results  # everyone met the freeze
    total = sum(r[1] for r in results[1:])
    assert Charge.objects.count() == total > 0

    account.refresh_from_db()
    assert account.standing == "frozen"
    frozen_at = account.standing_changed_at
    audit = AuditRecord.objects.get(
        content_type=ContentType.objects.get_for_model(BalanceAccount),
        object_id=str(account.pk),
        action="freeze",
    )
    last_charge = Charge.objects.order_by("-created_at").first().created_at
    assert last_charge < frozen_at <= audit.at
    assert summary(account)["cash"] == cny("100").amount - total * cny("0.01").amount
    assert_reconciled()
