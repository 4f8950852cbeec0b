"""Settlement is exact, on PostgreSQL with real threads, connections and processes
(R-USE-5, R-USE-1, R-USE-2, R-USE-3, R-LED-1, R-LED-5, R-LED-6).

Exactly once: no event settled twice or skipped when inserts commit out of id order,
when settlers run at once, and when a settler process is SIGKILLed midway; concurrent
ingestion of one request id stores it once; every money movement and the grant expiry
sweep settle the account's pending usage first, in their own transaction."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import create_api_key
from billing.micro import from_micro
from billing.models import Grant, LedgerTransaction, Lot, Posting, UsageEvent
from billing.services import metering
from billing.services.authorization import resolve_api_keys
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot, expire_due_grants, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.purchases import InsufficientBalance, purchase_package
from billing.services.refund_holds import hold_lots_for_refund
from billing.services.settlement import run_settler, settle_chunk
from tests.factories import UserFactory
from tests.workers import database_url

from .conftest import cny, run_threads, summary
from .http import TOKEN, call
from .settlement_checks import assert_books_exact, parts_of, reference_parts

pytestmark = [pytest.mark.django_db(transaction=True)]


def ref(api_key):
    """The key as the gateway resolves it (a KeyRef: key state and standing)."""
    return resolve_api_keys([api_key.raw])[api_key.raw]


def accounts_with_keys(n, *, seed=1):
    """n accounts, each with a key, a cash lot and (every other one) a trial grant with
    no expiry; some lots small, so usage runs into arrears. Returns [(account, KeyRef,
    sources in deduction order as (bucket, micro))]."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        user = UserFactory(phone="")
        key, raw = create_api_key(user, name="k")
        account = user.balance_account
        sources = []
        if i % 2:
            trial = rnd.choice([1, 2, 5])
            grant_funds(account, cny(trial), kind="trial", expires_at=None, idempotency_key=f"T{i}")
            sources.append(("trial", trial * 1_000_000))
        cash = rnd.choice([1, 3, 10, 50])
        credit_lot(account, cny(cash), channel="alipay", idempotency_key=f"L{i}")
        sources.append(("cash", cash * 1_000_000))
        out.append((account, resolve_api_keys([raw])[raw], sources))
    return out


def random_events(keyed, count, *, prefix, seed):
    rnd = random.Random(seed)
    return [
        ReportedUsage(
            f"{prefix}-{j}", keyed[rnd.randrange(len(keyed))][1], "m", rnd.randint(1, 400_000)
        )
        for j in range(count)
    ]


def ingest(events, size=2000):
    for i in range(0, len(events), size):
        results = record_usage(events[i : i + size])
        assert {r.status for r in results} == {"accepted"}


def assert_each_account_as_one_by_one(keyed):
    """Every event's parts and every account's lots, grants, buckets and arrears are
    what charging its events one by one, in the order received, gives (R-USE-2/3/5)."""
    for account, _key, sources in keyed:
        charges = list(UsageEvent.objects.filter(account=account).order_by("id"))
        expected, left = reference_parts([c.amount_micro for c in charges], sources)
        assert [parts_of(c) for c in charges] == expected, account.pk
        have = [g.remaining_micro for g in Grant.objects.filter(account=account).order_by("id")] + [
            lot.remaining_micro for lot in Lot.objects.filter(account=account).order_by("id")
        ]
        assert have == left, account.pk
        s = summary(account)
        assert s["arrears"] * 1_000_000 == sum(e[3] for e in expected)


def test_an_event_committed_after_a_later_one_was_settled_is_settled_once(account, api_key):
    """R-USE-5: an event whose insert takes the lower id but commits after a later event
    was already settled is not skipped (the settler looks for pending rows, not for ids
    past a high-water mark) and the later one is not settled again: two usage
    transactions, one event each, the books exact."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    key = ref(api_key)
    inserted, release = threading.Event(), threading.Event()
    outcome = []

    def slow_ingestion():
        try:
            with transaction.atomic():  # the ingestion's transaction, held open
                outcome.extend(metering._record([ReportedUsage("early", key, "m", 1_000_000)]))
                inserted.set()
                release.wait(30)
        finally:
            connection.close()

    t = threading.Thread(target=slow_ingestion)
    t.start()
    try:
        assert inserted.wait(30)
        (late,) = record_usage([ReportedUsage("late", key, "m", 2_000_000)])
        assert late.status == "accepted"
        assert settle_chunk() == 1  # only the committed event is visible
        assert settle_chunk() == 0
    finally:
        release.set()
        t.join(30)
    assert [r.status for r in outcome] == ["accepted"]
    early, late = (
        UsageEvent.objects.get(request_id="early"),
        UsageEvent.objects.get(request_id="late"),
    )
    assert early.pk < late.pk  # the insert order: the early one took the lower id
    assert early.transaction_id is None and late.transaction_id is not None
    assert settle_chunk() == 1 and settle_chunk() == 0
    early.refresh_from_db()
    late_txn = late.transaction_id
    late.refresh_from_db()
    assert late.transaction_id == late_txn  # not settled again
    assert early.transaction_id > late.transaction_id
    assert (early.cash_micro, late.cash_micro) == (1_000_000, 2_000_000)
    assert summary(account)["cash"] == 7
    assert assert_books_exact() == 2


def test_settlers_at_once_with_ingestion_settle_every_event_exactly_once():
    """R-USE-5 / R-LED-6: three settler threads run chunks of random sizes at once while a
    fourth thread keeps ingesting (6,000 events over 40 accounts). The chunks' counts add
    up to exactly the number of events (none settled twice: a second settlement of a row
    would make its chunk fail, and none skipped: nothing is left pending); every event's
    parts and every account's figures equal the one-by-one reference; books exact."""
    keyed = accounts_with_keys(40)
    first = random_events(keyed, 3000, prefix="a", seed=2)
    later = random_events(keyed, 3000, prefix="b", seed=3)
    ingest(first)
    ingesting = threading.Event()
    ingesting.set()

    def work(i):
        if i == 3:
            try:
                ingest(later, size=250)
            finally:
                ingesting.clear()
            return 0
        rnd, settled = random.Random(i), 0
        while True:
            done = settle_chunk(rnd.choice([3, 10, 40]))  # a few accounts a chunk
            settled += done
            if not done and not ingesting.is_set():
                return settled

    results, errors = run_threads(4, work)
    assert not errors, errors
    settled = sum(results) + run_settler(seconds=0)
    assert settled == UsageEvent.objects.count() == 6000
    # a settler skips the accounts another one holds (SKIP LOCKED), so they only overlap
    # when their chunks reach different accounts; at least two took part
    assert sum(r > 0 for r in results[:3]) >= 2, results
    assert_each_account_as_one_by_one(keyed)
    assert assert_books_exact() > 40  # many chunks, one transaction per account per chunk


def test_concurrent_ingestion_committing_out_of_order_is_settled_exactly_once():
    """R-USE-5: three ingestion threads commit batches at once (their ids interleave, so
    commits land out of id order) while two settlers run chunks. Every event is settled
    exactly once (the chunks' counts add up, nothing left pending) and, since without
    expiries the order of an account's events changes only which event paid with what,
    every account's lots, grants and arrears equal the one-by-one reference of its
    total usage; books exact."""
    keyed = accounts_with_keys(30, seed=6)
    batches = [random_events(keyed, 1500, prefix=f"c{t}", seed=10 + t) for t in range(3)]
    ingested = [threading.Event() for _ in batches]

    def work(i):
        if i < 3:
            try:
                ingest(batches[i], size=100)
            finally:
                ingested[i].set()
            return 0
        rnd, settled = random.Random(i), 0
        while True:
            done = settle_chunk(rnd.choice([10, 60, 300]))
            settled += done
            if not done and all(e.is_set() for e in ingested):
                return settled

    results, errors = run_threads(5, work)
    assert not errors, errors
    settled = sum(results) + run_settler(seconds=0)
    assert settled == UsageEvent.objects.count() == 4500
    for account, _key, sources in keyed:
        total = sum(
            UsageEvent.objects.filter(account=account).values_list("amount_micro", flat=True)
        )
        _parts, left = reference_parts([total], sources)
        have = [g.remaining_micro for g in Grant.objects.filter(account=account).order_by("id")] + [
            lot.remaining_micro for lot in Lot.objects.filter(account=account).order_by("id")
        ]
        assert have == left, account.pk
        assert summary(account)["arrears"] * 1_000_000 == _parts[0][3]
    assert_books_exact()


def _other_backends_in_a_transaction():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND xact_start IS NOT NULL"
        )
        return cur.fetchone()[0]


def _other_backends():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return cur.fetchone()[0]


def test_a_settler_process_killed_midway_leaves_nothing_half_done(tmp_path):
    """R-USE-5 / R-LED-1: a real `manage.py settle_usage --seconds 30` process is
    SIGKILLed while it is inside a chunk's transaction, with events still pending. What
    it committed is whole (every usage transaction balances, its revenue equals its
    events and each bucket its events' parts); the chunk it was in leaves no trace (its
    events are still pending with zero parts). Settling again takes exactly the rest:
    nothing settled twice or skipped, every figure as one by one, books exact."""
    keyed = accounts_with_keys(30, seed=4)
    ingest(random_events(keyed, 20_000, prefix="k", seed=5), size=5000)
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        PORTAL_VAR_DIR=str(tmp_path),
    )
    log = open(tmp_path / "settler.log", "w")  # noqa: SIM115 - closed below
    settler = subprocess.Popen(
        [sys.executable, "manage.py", "settle_usage", "--seconds", "30", "--chunk", "700"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    killed_inside = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and settler.poll() is None:
            settled = UsageEvent.objects.filter(transaction__isnull=False).count()
            if settled >= 2000 and _other_backends_in_a_transaction():
                settler.send_signal(signal.SIGKILL)
                killed_inside = True
                break
            time.sleep(0.005)
        settler.wait(30)
    finally:
        if settler.poll() is None:
            settler.kill()
            settler.wait()
        log.close()
    assert killed_inside, (tmp_path / "settler.log").read_text()[-2000:]
    assert settler.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # PostgreSQL rolls the dead backend's chunk back
    while _other_backends() and time.monotonic() < deadline:
        time.sleep(0.05)

    settled_by_the_killed = UsageEvent.objects.filter(transaction__isnull=False).count()
    pending = UsageEvent.objects.filter(transaction__isnull=True)
    assert 0 < settled_by_the_killed < 20_000 and pending.count() == 20_000 - settled_by_the_killed
    assert not pending.exclude(
        trial_micro=0, discount_micro=0, cash_micro=0, arrears_micro=0, settled_at=None
    ).exists()
    usage_txns = assert_books_exact(all_settled=False)
    assert usage_txns == LedgerTransaction.objects.filter(kind="usage").count()

    assert run_settler(seconds=0) == 20_000 - settled_by_the_killed
    assert_each_account_as_one_by_one(keyed)
    assert assert_books_exact() > usage_txns


def _post_all(base_url, bodies):
    results, errors = run_threads(
        len(bodies), lambda i: call(base_url, "usage", bodies[i], token=TOKEN)
    )
    assert not errors, errors
    return results


def test_one_request_id_posted_at_once_is_stored_once(live_server, settings, account, api_key):
    """R-LED-5 / R-USE-1: eight gateway calls with the same request id at the same
    moment: with the same amount, one is `accepted` and seven `replayed` (the first's
    amount); with eight different amounts, one is accepted and seven answer 409
    request_id_conflict. One event stored each time, settled once."""
    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    body = {"request_id": "same", "api_key": api_key.raw, "model": "m", "amount": "1.5"}
    results = _post_all(live_server.url, [body] * 8)
    assert sorted(r[1]["status"] for r in results) == ["accepted"] + ["replayed"] * 7
    assert {(r[0], r[1]["amount"]) for r in results} == {(200, "1.500000")}

    bodies = [{**body, "request_id": "differ", "amount": f"1.0{i}"} for i in range(8)]
    results = _post_all(live_server.url, bodies)
    statuses = sorted((r[0], r[1].get("status") or r[1]["code"]) for r in results)
    assert statuses == [(200, "accepted")] + [(409, "request_id_conflict")] * 7
    (winner,) = [bodies[i]["amount"] for i, r in enumerate(results) if r[0] == 200]
    stored = UsageEvent.objects.get(request_id="differ")
    assert stored.amount_micro == int(winner.replace(".", "")) * 10_000

    assert UsageEvent.objects.count() == 2
    run_settler(seconds=0)
    assert (
        summary(account)["cash"] == 10 - cny("1.5").amount - from_micro(stored.amount_micro).amount
    )
    assert assert_books_exact() == 1


def test_overlapping_batches_at_once_store_each_request_id_once(account, api_key):
    """R-LED-5: four 100-event batches at once over two accounts share request ids: each
    id is stored once and answered `accepted` exactly once across the batches, the
    others `replayed`; after settlement each account paid for exactly its events."""
    other = UserFactory(phone="")
    key2, raw2 = create_api_key(other, name="k")
    credit_lot(account, cny("3"), channel="alipay", idempotency_key="A")
    credit_lot(other.balance_account, cny("3"), channel="alipay", idempotency_key="B")
    raws = [api_key.raw, raw2]

    def work(i):
        keys = resolve_api_keys(raws)
        events = [
            ReportedUsage(f"ev-{j}", keys[raws[j % 2]], "m", 50_000)
            for j in range(i * 20, i * 20 + 100)
        ]
        return record_usage(events)

    results, errors = run_threads(4, work)
    assert not errors, errors
    answers = [r for batch in results for r in batch]
    accepted = [r.request_id for r in answers if r.status == "accepted"]
    assert len(accepted) == len(set(accepted)) == 160
    assert {r.status for r in answers} == {"accepted", "replayed"}
    assert UsageEvent.objects.count() == 160
    run_settler(seconds=0)
    for owner in (account, other.balance_account):  # 80 events × 0.05 on 3.00 each
        assert (summary(owner)["cash"], summary(owner)["arrears"]) == (0, 1)
    assert assert_books_exact() >= 2


def test_money_movements_settle_pending_usage_first(account, api_key):
    """R-USE-5 / R-USE-3: with usage pending, a top-up pays the arrears the pending usage
    makes (settled first, in the top-up's transaction), a prepaid purchase sees the
    balance net of it, and a refund hold can take only the cash left after it."""
    lot = credit_lot(account, cny("1"), channel="alipay", idempotency_key="L1")
    key = ref(api_key)
    record_usage([ReportedUsage(f"e{i}", key, "m", 1_000_000) for i in range(3)])
    assert summary(account)["cash"] == 1  # pending: nothing moved yet

    top_up = credit_lot(account, cny("5"), channel="alipay", idempotency_key="L2")
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    assert Lot.objects.get(pk=lot.pk).remaining_micro == 0
    assert top_up.remaining_micro == 3_000_000  # 5.00 − the 2.00 of arrears the usage made
    usage_txn = UsageEvent.objects.get(request_id="e2").transaction_id
    top_up_txn = Posting.objects.filter(lot=top_up).values_list("transaction_id", flat=True)[0]
    assert usage_txn < top_up_txn
    assert sorted(parts_of(c) for c in UsageEvent.objects.all()) == [
        (0, 0, 0, 1_000_000),
        (0, 0, 0, 1_000_000),
        (0, 0, 1_000_000, 0),
    ]
    s = summary(account)
    assert (s["cash"], s["arrears"]) == (3, 0)

    record_usage([ReportedUsage("p1", key, "m", 1_000_000)])  # 2.00 really left
    with pytest.raises(InsufficientBalance):
        purchase_package(account, cny("2.01"), idempotency_key="buy1", description="pkg")
    # refused: its transaction, the settlement it began with included, rolled back
    assert UsageEvent.objects.get(request_id="p1").transaction_id is None
    purchase_package(account, cny("1.5"), idempotency_key="buy2", description="pkg")

    record_usage([ReportedUsage("h1", key, "m", 250_000)])  # 0.25 left in the lot
    with pytest.raises(LedgerError) as exc:
        hold_lots_for_refund(account, {top_up.pk: 500_000}, idempotency_key="hold1")
    assert exc.value.code == "insufficient_lot"
    hold_lots_for_refund(account, {top_up.pk: 250_000}, idempotency_key="hold2")
    s = summary(account)
    assert (s["cash"], s["available"]) == (0, 0)
    assert assert_books_exact() >= 3


def _received(request_id, at):
    """Give an event its receipt time (the gateway cannot; a test can)."""
    UsageEvent.objects.filter(request_id=request_id).update(created_at=at)


def test_a_grant_pays_for_events_received_before_its_expiry(account, api_key):
    """R-USE-5 / R-USE-2: a trial grant expiring at T pays for an event received at
    T − 10 s even when it is settled at T + 20 s (before the sweep); an event received at
    T + 10 s is paid by cash, although the grant still shows money until the sweep. The
    sweep then expires exactly what is left."""
    expires = timezone.now() + timedelta(hours=1)
    grant = grant_funds(account, cny("5"), kind="trial", expires_at=expires, idempotency_key="T")
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    key = ref(api_key)
    record_usage([ReportedUsage("before", key, "m", 2_000_000)])
    record_usage([ReportedUsage("after", key, "m", 1_000_000)])
    _received("before", expires - timedelta(seconds=10))
    _received("after", expires + timedelta(seconds=10))

    assert settle_chunk(now=expires + timedelta(seconds=20)) == 2
    before, after = (
        UsageEvent.objects.get(request_id="before"),
        UsageEvent.objects.get(request_id="after"),
    )
    assert parts_of(before) == (2_000_000, 0, 0, 0)
    assert parts_of(after) == (0, 0, 1_000_000, 0)
    grant.refresh_from_db()
    assert grant.remaining_micro == 3_000_000 and grant.state == "active"

    assert expire_due_grants(now=expires + timedelta(seconds=30)) == 1
    grant.refresh_from_db()
    assert (grant.state, grant.remaining_micro) == ("expired", 0)
    s = summary(account)
    assert (s["trial"], s["cash"], s["arrears"]) == (0, 9, 0)
    assert assert_books_exact() == 1


def test_the_expiry_sweep_settles_pending_usage_of_due_grants_first(account, api_key):
    """R-USE-5: expire_due_grants first settles the pending usage of the owners of the
    grants it is about to sweep: an event received before the expiry is paid by the
    grant, one received after it by cash, and only the rest of the grant expires. An
    account with no pending usage is simply swept."""
    expires = timezone.now() + timedelta(hours=1)
    grant = grant_funds(account, cny("5"), kind="trial", expires_at=expires, idempotency_key="T")
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L")
    other = UserFactory(phone="").balance_account
    grant_funds(other, cny("4"), kind="trial", expires_at=expires, idempotency_key="T2")
    key = ref(api_key)
    record_usage([ReportedUsage("before", key, "m", 2_000_000)])
    record_usage([ReportedUsage("after", key, "m", 1_500_000)])
    _received("before", expires - timedelta(seconds=10))
    _received("after", expires + timedelta(seconds=10))

    assert expire_due_grants(now=expires + timedelta(seconds=20)) == 2
    before, after = (
        UsageEvent.objects.get(request_id="before"),
        UsageEvent.objects.get(request_id="after"),
    )
    assert parts_of(before) == (2_000_000, 0, 0, 0)
    assert parts_of(after) == (0, 0, 1_000_000, 500_000)  # not the expired grant: arrears
    expiry = LedgerTransaction.objects.get(kind="expiry", account=account)
    assert expiry.pk > before.transaction_id
    assert Posting.objects.get(transaction=expiry, grant=grant).amount_micro == -3_000_000
    s = summary(account)
    assert (s["trial"], s["cash"], s["arrears"]) == (0, 0, cny("0.5").amount)
    assert summary(other)["trial"] == 0
    assert assert_books_exact() == 1


def _hold_accounts(owner_ids, held, release):
    """A transaction in flight on these accounts (a refund, a purchase, another
    settler's chunk): their locks held until `release`."""
    from billing.services.engine import lock_buckets

    try:
        with transaction.atomic():
            lock_buckets(owner_ids)
            held.set()
            release.wait(30)
    finally:
        connection.close()


def test_a_busy_account_does_not_hold_back_the_others(account, api_key):
    """R-USE-5 (balances seconds behind): while one account's locks are held by a
    transaction in flight and its 100 pending events are the oldest, the settler still
    settles the 10 newer events of another account (the busy one waits for next time)."""
    other = UserFactory(phone="")
    _key, raw = create_api_key(other, name="k")
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L1")
    credit_lot(other.balance_account, cny("10"), channel="alipay", idempotency_key="L2")
    ingest([ReportedUsage(f"x{i}", ref(api_key), "m", 10_000) for i in range(100)])
    other_key = resolve_api_keys([raw])[raw]
    ingest([ReportedUsage(f"y{i}", other_key, "m", 10_000) for i in range(10)])
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_accounts, args=([account.pk], held, release))
    holder.start()
    try:
        assert held.wait(30)
        for _ in range(3):
            settle_chunk(50)
        waiting = UsageEvent.objects.filter(account=other.balance_account, transaction__isnull=True)
        assert not waiting.exists()
    finally:
        release.set()
        holder.join(30)
    assert run_settler(seconds=0) == 100 + (10 if waiting.exists() else 0)
    assert_books_exact()


def test_an_event_in_flight_at_the_expiry_is_still_paid_by_the_grant(account, api_key):
    """R-USE-5: an event received (stamped) before a grant's expiry whose ingestion
    transaction is still open when the sweep runs one second after the expiry is paid by
    the grant once it commits and settles, like every event received before the expiry."""
    expires = timezone.now() + timedelta(hours=1)
    grant_funds(account, cny("5"), kind="trial", expires_at=expires, idempotency_key="T")
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    key = ref(api_key)
    inserted, release = threading.Event(), threading.Event()

    def slow_ingestion():
        try:
            with transaction.atomic():
                metering._record([ReportedUsage("in-flight", key, "m", 1_000_000)])
                inserted.set()
                release.wait(30)
        finally:
            connection.close()

    t = threading.Thread(target=slow_ingestion)
    t.start()
    try:
        assert inserted.wait(30)
        expire_due_grants(now=expires + timedelta(seconds=1))
    finally:
        release.set()
        t.join(30)
    event = UsageEvent.objects.get(request_id="in-flight")
    assert event.created_at < expires
    run_settler(seconds=0)
    event.refresh_from_db()
    assert parts_of(event) == (1_000_000, 0, 0, 0)
    assert_books_exact()
