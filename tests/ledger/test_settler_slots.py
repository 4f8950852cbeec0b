"""Settlers that scale out (R-USE-5, R-LED-6): accounts fall into slots, each slot held
by one settler at a time through a PostgreSQL advisory lock on its session, so N
settlers settle disjoint accounts; a settler that dies lets go of its slots with its
session and the others take them over within seconds; every event is settled exactly
once whatever the settlers' slots (disjoint, overlapping during a hand-over, or none)."""

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection

from billing.models import UsageEvent
from billing.services import settlement
from billing.services.settlement import (
    SLOT_LOCK,
    SettlerSlots,
    run_settler,
    settle_chunk,
    slot_of,
)
from tests.workers import database_url

from . import test_settlement_equivalence as equivalence
from .settlement_checks import assert_books_exact
from .test_settlement_pg import (
    accounts_with_keys,
    assert_each_account_as_one_by_one,
    ingest,
    random_events,
)

pytestmark = [pytest.mark.django_db(transaction=True)]


class Settler(threading.Thread):
    """A settler on its own thread and database connection (so its own PostgreSQL
    session, holding its own advisory locks), running what the test hands it."""

    def __init__(self):
        super().__init__(daemon=True)
        self.jobs, self.answers = queue.Queue(), queue.Queue()
        self.start()

    def run(self):
        while (job := self.jobs.get()) is not None:
            try:
                self.answers.put((True, job()))
            except Exception as exc:  # noqa: BLE001 - handed back to the test
                self.answers.put((False, exc))
        connection.close()  # the session ends: its advisory locks go with it

    def do(self, fn):
        self.jobs.put(fn)
        ok, value = self.answers.get(timeout=30)
        if not ok:
            raise value
        return value

    def stop(self):
        self.jobs.put(None)
        self.join(10)


def _slot_holders():
    """{backend pid: slots it holds} in this database."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT l.pid, array_agg(l.objid::int ORDER BY l.objid) FROM pg_locks l"
            " JOIN pg_database d ON d.oid = l.database AND d.datname = current_database()"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid"
            " AND l.objsubid = 2 GROUP BY l.pid",
            [SLOT_LOCK],
        )
        return dict(cur.fetchall())


def test_settlers_share_the_slots_evenly_and_take_over_a_gone_ones():
    """R-USE-5: the first settler takes every slot; a second one joining gets half of
    them once the first gives back what is above its share (16 / 2 settlers); their
    slots never overlap; when the second's session ends, the first takes all 16 again
    at its next look."""
    a, b = Settler(), Settler()
    try:
        first = SettlerSlots(16)
        second = SettlerSlots(16)
        assert a.do(first.rebalance) == frozenset(range(16))
        assert a.do(first.current) is None  # every slot: no filter at all
        assert b.do(second.rebalance) == frozenset()  # all taken, for now
        assert b.do(second.current) == (16, frozenset())
        held_a = a.do(first.rebalance)  # two settlers now: a gives back 8
        held_b = b.do(second.rebalance)
        assert len(held_a) == len(held_b) == 8
        assert held_a.isdisjoint(held_b) and held_a | held_b == set(range(16))
        assert sorted(map(sorted, _slot_holders().values())) == sorted(
            [sorted(held_a), sorted(held_b)]
        )
        b.stop()  # its session ends
        assert a.do(first.rebalance) == frozenset(range(16))
        a.do(first.release)
        assert _slot_holders() == {}
    finally:
        a.stop()
        b.stop()


def test_a_slotted_chunk_takes_only_the_accounts_of_its_slots():
    """R-USE-5: settle_chunk with slots settles the pending events of the accounts in
    those slots and leaves every other account's events pending."""
    keyed = accounts_with_keys(6, seed=8)
    ingest(random_events(keyed, 300, prefix="s", seed=9))
    ids = [acc.pk for acc, _k, _s in keyed]
    mine = {ids[0] % 4, ids[1] % 4}
    expected = UsageEvent.objects.filter(account_id__in=[i for i in ids if i % 4 in mine])
    assert settle_chunk(10_000, slots=(4, frozenset(mine))) == expected.count() > 0
    pending = UsageEvent.objects.filter(transaction__isnull=True)
    assert {e.account_id % 4 for e in pending} == {i % 4 for i in ids} - mine
    assert settle_chunk(10_000, slots=(4, frozenset())) == 0  # no slot: nothing of its own
    assert run_settler(seconds=0) == pending.count()
    assert_each_account_as_one_by_one(keyed)
    assert_books_exact()


@pytest.mark.parametrize(
    "slots",
    [
        [None, None, None],  # no slots: every settler on every account (SKIP LOCKED)
        [{0, 3}, {1}, {2}],  # disjoint slots (4 of them) over three settlers
        [{0, 1, 2}, {1, 2, 3}, {0, 3}],  # overlapping, as during a hand-over
    ],
    ids=["no-slots", "disjoint", "overlapping"],
)
def test_n_slotted_settlers_with_ingestion_settle_every_event_exactly_once(slots):
    """R-USE-5 / R-LED-6: three settler threads, each on its own slots (disjoint, or
    overlapping as during a hand-over, or none), run chunks of random sizes while a
    fourth thread keeps ingesting (4,000 events over 24 accounts). The chunks' counts
    add up to exactly the number of events, every event's parts and every account's
    figures equal the one-by-one reference, books exact."""
    from .conftest import run_threads

    keyed = accounts_with_keys(24, seed=12)
    first = random_events(keyed, 2000, prefix="a", seed=13)
    later = random_events(keyed, 2000, prefix="b", seed=14)
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
        mine = None if slots[i] is None else (4, frozenset(slots[i]))
        while True:
            done = settle_chunk(rnd.choice([5, 20, 80]), slots=mine)
            settled += done
            if not done and not ingesting.is_set():
                return settled

    results, errors = run_threads(4, work)
    assert not errors, errors
    settled = sum(results) + run_settler(seconds=0)
    assert settled == UsageEvent.objects.count() == 4000
    assert sum(r > 0 for r in results[:3]) >= 2, results
    assert_each_account_as_one_by_one(keyed)
    assert assert_books_exact() > 24


def test_chunked_settlement_by_two_slotted_settlers_equals_one_by_one():
    """R-USE-5 / R-USE-2 / R-USE-3: the equivalence property (test_settlement_equivalence,
    unchanged) with every chunk taken by one of two settlers holding one slot each of two
    (the accounts split by id), in turns: every figure equals charging one by one."""
    real = settle_chunk
    turn = [0]

    def two_settlers(limit=None, **kw):
        for s in (turn[0], 1 - turn[0]):
            done = real(limit, slots=(2, frozenset({s})), **kw)
            if done:
                turn[0] = 1 - s
                return done
        return 0

    with mock.patch.object(equivalence, "settle_chunk", two_settlers):
        equivalence._run(12)


def _settlers(n, tmp_path, seconds=60, chunk=150):
    env = dict(os.environ, DATABASE_URL=database_url(), PORTAL_VAR_DIR=str(tmp_path))
    procs = []
    for i in range(n):
        log = open(tmp_path / f"settler{i}.log", "w")  # noqa: SIM115 - closed by the caller
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "settle_usage", "--seconds", str(seconds)]
            + ["--chunk", str(chunk)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log = log
        procs.append(proc)
    return procs


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.log.close()


def test_a_killed_settler_hands_its_slots_to_the_other_within_seconds(tmp_path):
    """R-USE-5 / R-LED-1: two real `manage.py settle_usage` processes share the 16 slots
    (8 each) and settle a backlog over 40 accounts. One is SIGKILLed: its session ends, so
    its slots are free, and the other holds all 16 within seconds of PostgreSQL seeing the
    session gone (its next look, every REBALANCE_SECONDS) and settles the events that come
    in after the kill, the dead one's accounts included. Every one of the 12,000 events
    settled exactly once, every figure as one by one, books exact."""
    keyed = accounts_with_keys(40, seed=21)
    events = random_events(keyed, 12_000, prefix="h", seed=22)
    # The backlog may be settled before the second process is up (a loaded machine starts
    # Django slowly): the events after the kill are what proves the survivor takes over.
    before, after = events[:9_000], events[9_000:]
    ingest(before, size=3000)
    last_before = UsageEvent.objects.order_by("-id").values_list("id", flat=True).first()
    # a stretch far longer than the test: the survivor must not stop on its own meanwhile
    procs = _settlers(2, tmp_path, seconds=900)
    try:
        deadline = time.monotonic() + 120  # two Django starts on a loaded 2-core machine
        while time.monotonic() < deadline:
            holders = _slot_holders()
            if len(holders) == 2 and all(len(s) == 8 for s in holders.values()):
                break
            assert all(p.poll() is None for p in procs), (tmp_path / "settler0.log").read_text()
            time.sleep(0.05)
        else:
            pytest.fail(f"the settlers never shared the slots: {_slot_holders()}")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        killed_at = time.monotonic()
        # Timed from the kill, polled generously: on a loaded machine PostgreSQL may take
        # a while to notice the dead client, and the survivor looks between chunks.
        gone_at = None
        while time.monotonic() - killed_at < 60:
            holders = _slot_holders()
            if gone_at is None and len(holders) == 1:
                gone_at = time.monotonic()  # the dead session's slots are free
            if len(holders) == 1 and len(next(iter(holders.values()))) == 16:
                break
            time.sleep(0.05)
        took = time.monotonic() - killed_at
        assert len(holders) == 1 and len(next(iter(holders.values()))) == 16, (took, holders)
        # "within seconds": some REBALANCE_SECONDS looks, with room for a loaded CI host
        assert took < 20, (took, gone_at and gone_at - killed_at)
        ingest(after, size=1000)
        later = UsageEvent.objects.filter(id__gt=last_before).values_list("account_id", flat=True)
        assert {slot_of(a, 16) for a in later} == set(range(16))  # the dead one's slots too
        pending = UsageEvent.objects.filter(transaction__isnull=True)
        deadline = time.monotonic() + 120
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pending.exists()
        assert procs[1].poll() is None  # the survivor settled the rest
    finally:
        _stop(procs)
    assert procs[0].returncode == -signal.SIGKILL
    assert UsageEvent.objects.filter(transaction__isnull=False).count() == 12_000
    assert_each_account_as_one_by_one(keyed)
    assert assert_books_exact() > 40
    assert _slot_holders() == {}  # the survivor gave its slots back when it stopped


def test_slot_of_matches_the_chunk_filter():
    """R-USE-5: the Python slot of an account (slot_of) is the SQL filter's."""
    with connection.cursor() as cur:
        cur.execute("SELECT x %% 16 FROM unnest(%s::bigint[]) x", [[1, 17, 31, 1_000_003]])
        assert [r[0] for r in cur.fetchall()] == [
            settlement.slot_of(x, 16) for x in (1, 17, 31, 1_000_003)
        ]


def test_the_watchdog_starts_every_settler_lane_that_is_not_alive(settings):
    """R-USE-5: with USAGE_SETTLERS=3 the minute job's start_chain queues the lanes whose
    chain key is not held (lane 0 keeps the one-settler key), and a lane left over from a
    larger USAGE_SETTLERS stops at once."""
    from django.core.cache import cache

    from billing import tasks

    settings.USAGE_SETTLERS = 3
    settings.USAGE_SETTLER_SECONDS = 0.05
    keys = [tasks.lane_key(lane) for lane in range(4)]
    assert keys[0] == tasks.CHAIN_KEY and len(set(keys)) == 4
    cache.delete_many(keys)
    cache.set(keys[1], "running", timeout=60)
    try:
        with mock.patch.object(tasks.settle_usage_continuously, "delay") as started:
            assert tasks.start_chain() is True
        assert [c.kwargs for c in started.call_args_list] == [{}, {"lane": 2}]
        with mock.patch.object(tasks.settle_usage_continuously, "apply_async") as queued:
            assert tasks.settle_usage_continuously.run(lane=3) == 0
            assert tasks.settle_usage_continuously.run(lane=2) == 0  # nothing pending
        assert queued.call_args.kwargs["kwargs"]["lane"] == 2  # its next stretch, same lane
        assert cache.get(keys[3]) is None
    finally:
        cache.delete_many(keys)
