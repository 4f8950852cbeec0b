"""Settling metered usage against the ledger (R-USE-5, R-USE-2, R-USE-3, R-USE-4).

Ingestion (billing.services.metering) stores each API call as a pending `UsageEvent`
with no locks and no postings. Settlement turns pending events into money:

- it holds the accounts' locks in the ledger's lock order (balance account rows,
  then bucket rows; `engine.lock_buckets`), so for any one account only one
  settlement runs at a time, and it reads the pending events *after* taking them
  (READ COMMITTED: a new snapshot per statement), so an event a concurrent
  settler has just settled is seen as settled and never taken twice;
- per account it applies R-USE-2 to the events in the order they were received
  (id order), each event with the grants that had not expired when it was
  received, and writes ONE ledger transaction for the account: a posting per grant
  and lot drawn on, arrears for what nothing covered (R-USE-3), revenue for the
  total; every event row gets its parts, its split and that transaction in the
  same database transaction (a settler killed midway leaves everything pending);
- low-balance and service-stopped notices fire once per crossing (R-USE-4).
- the daily usage rollup (billing.models.DailyUsage) gets the settled events in the same
  transaction (`_roll_up`: one statement per settlement), so it equals the events.

Two callers: the settler (`settle_chunk`, run continuously by `run_settler`: the
Celery job, `manage.py settle_usage` and the admin's Run-now) takes bounded chunks
of the oldest pending events and skips accounts another transaction holds; and
every other money movement, through `lock_and_settle` (the only way to take the
ledger's locks), settles the pending usage of the accounts it locks before it reads a
balance (R-USE-5: exact figures for refunds, top-ups paying arrears, disputes,
invoices and purchases).

The deduction order itself is planned in billing.services.deduction; the ledger
transactions are written by billing.services.engine (the one writer of the books).
Also here: `charge_usage` (meter one call and settle it at once: the one-by-one way
that chunked settlement must equal) and the low-balance notices (`notify_crossings`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ..micro import from_micro, to_micro
from ..models import TxnKind
from .deduction import load_sources, plan_deduction
from .engine import (
    Buckets,
    Entry,
    LedgerError,
    Leg,
    in_ids,
    lock_buckets,
    retry_transaction,
    write_rows,
)
from .limits import count_spend


def chunk_size() -> int:
    """The most events one settler chunk takes (settings.USAGE_SETTLE_CHUNK)."""
    return int(getattr(settings, "USAGE_SETTLE_CHUNK", 5000))


class PendingEvent:
    __slots__ = ("pk", "account_id", "request_id", "micro", "received_at", "model", "api_key_id")

    def __init__(self, pk, account_id, request_id, micro, received_at, model=None, key=None):
        self.pk, self.account_id, self.request_id, self.micro = pk, account_id, request_id, micro
        self.received_at = received_at
        self.model, self.api_key_id = model, key  # packages (R-PKG-3), key limits (R-USE-7)


def _pending(owner_ids, limit=None) -> list[PendingEvent]:
    """The pending events of these accounts, oldest first (at most `limit`)."""
    where, params = in_ids("account_id", owner_ids)
    sql = (
        "SELECT id, account_id, request_id, amount_micro, created_at, model, api_key_id"  # noqa: S608
        " FROM billing_usageevent"
        f" WHERE {where} AND transaction_id IS NULL ORDER BY id"
    )
    if limit:
        sql += " LIMIT %s"
        params = [*params, int(limit)]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [PendingEvent(*row) for row in cur.fetchall()]


def _thresholds(owner_ids) -> dict[int, int | None]:
    """{account id: low-balance threshold in micro-units, or None}, one query."""
    from accounts.models import BalanceAccount

    ids = list(owner_ids)
    if not ids:
        return {}
    return {
        pk: to_micro(t) if t is not None else None
        for pk, t in BalanceAccount.objects.filter(pk__in=ids).values_list(
            "pk", "low_balance_threshold"
        )
    }


def lock_and_settle(owner_ids) -> dict[int, Buckets]:
    """The locks of every money movement on balance accounts (the lock order:
    `engine.lock_buckets`), then the accounts' pending usage settled in the same
    transaction (R-USE-5): the movement sees balances that include every event received
    so far, and a grant pays for the events received before its expiry. The one place
    this rule lives; returns the locked buckets, moved to match."""
    locked = lock_buckets(owner_ids)
    settle_locked(locked)
    return locked


def settle_locked(locked: dict[int, Buckets], *, limit=None, now=None) -> int:
    """Settle the pending usage of accounts whose locks this transaction holds (all of
    it, or the oldest `limit` events). Returns how many events were settled. Moves the
    in-memory buckets to match, so the caller goes on with exact balances."""
    if not locked:
        return 0
    events = _pending(list(locked), limit)
    if not events:
        return 0
    now = now or timezone.now()
    by_owner: dict[int, list[PendingEvent]] = defaultdict(list)
    for ev in events:
        by_owner[ev.account_id].append(ev)
    owners = sorted(by_owner)
    earliest = min(ev.received_at for ev in events)
    sources = load_sources({o: locked[o] for o in owners}, earliest)
    # Crossings (R-USE-4) are judged on what can pay now, as authorize judges (R-USE-6):
    # a grant past its expiry that the sweep has not ended yet is not money.
    dead = _dead_grants([o for o in owners if _has_grants(locked[o])], now)
    dead_loaded = {o: _dead_in(sources[o], now) for o in owners}
    before = {o: _can_pay(locked[o], dead.get(o, 0)) for o in owners}
    entries, rows = [], []
    for owner in owners:
        total: dict[tuple, int] = defaultdict(int)
        buckets = locked[owner]
        for ev in by_owner[owner]:
            legs, split, parts = plan_deduction(
                ev.micro, sources[owner], buckets, at=ev.received_at, model=ev.model
            )
            for leg in legs:
                key = (leg.ledger_account_id, leg.bucket, leg.lot_id, leg.grant_id, leg.holding_id)
                total[key] += leg.micro
            rows.append((ev, len(entries), parts, split))
        legs = [
            Leg(la, bucket, micro, lot, grant, holding)
            for (la, bucket, lot, grant, holding), micro in total.items()
        ]
        count = len(by_owner[owner])
        memo = f"usage: {count} event{'s' if count != 1 else ''}"
        entries.append(Entry(TxnKind.USAGE, owner, legs, None, memo))
    txn_ids = write_rows(entries, now=now)
    _mark_settled(rows, txn_ids, now)
    count_spend(events, now)  # spend limits (R-USE-7), in this transaction
    _roll_up([ev.pk for ev in events])
    after = {
        o: _can_pay(locked[o], dead.get(o, 0) - dead_loaded[o] + _dead_in(sources[o], now))
        for o in owners
    }
    thresholds = _thresholds(o for o in owners if after[o] < before[o])
    for owner in thresholds:
        notify_crossings(
            owner, thresholds[owner], before[owner], after[owner], by_owner[owner][0].request_id
        )
    return len(events)


def _has_grants(buckets: Buckets) -> bool:
    return buckets.micro("trial") > 0 or buckets.micro("discount") > 0


def _can_pay(buckets: Buckets, dead_micro: int) -> int:
    return max(0, buckets.spendable_micro - dead_micro - buckets.arrears_micro)


def _dead_in(sources, now) -> int:
    """What the loaded grants that have expired by `now` still hold."""
    return sum(
        s.remaining
        for s in sources
        if s.grant_id and s.expires_at is not None and s.expires_at <= now
    )


def _dead_grants(owner_ids, now) -> dict[int, int]:
    """{account: what its grants past their expiry, not yet swept, still hold}."""
    if not owner_ids:
        return {}
    where, params = in_ids("account_id", owner_ids)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT account_id, SUM(remaining_micro) FROM billing_grant"  # noqa: S608
            f" WHERE {where} AND state = 'active' AND remaining_micro > 0"
            " AND expires_at <= %s GROUP BY account_id",
            [*params, now],
        )
        return {owner: int(total) for owner, total in cur.fetchall()}


def _mark_settled(rows, txn_ids, now):
    """Give every settled event its parts, split and ledger transaction. Only pending
    rows are touched; a count that differs means an event was settled elsewhere, and
    the whole settlement rolls back (it cannot happen under the account locks)."""
    values = [
        {
            "id": ev.pk,
            "txn": txn_ids[i],
            "trial": parts["trial"],
            "discount": parts["discount"],
            "cash": parts["cash"],
            "arrears": parts["arrears"],
            "package": parts["package"],
            "split": split,
        }
        for ev, i, parts, split in rows
    ]
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE billing_usageevent c SET transaction_id = v.txn, settled_at = %s,
                   trial_micro = v.trial, discount_micro = v.discount, cash_micro = v.cash,
                   arrears_micro = v.arrears, package_micro = v.package, split = v.split
              FROM json_to_recordset(%s::json) AS v(id bigint, txn bigint, trial bigint,
                   discount bigint, cash bigint, arrears bigint, package bigint, split jsonb)
             WHERE c.id = v.id AND c.transaction_id IS NULL
            """,
            [now, json.dumps(values)],
        )
        changed = cur.rowcount
    if changed != len(values):
        raise LedgerError("A usage event was settled twice; nothing was settled.", code="retry")


# The daily rollup (billing.models.DailyUsage): one statement per settlement, in its
# transaction, so the usage page never reads a day that disagrees with the events.
_ROLL_UP = """
INSERT INTO billing_dailyusage AS d (account_id, day, model, api_key_id, calls, amount_micro,
       input_tokens, output_tokens)
SELECT account_id, (created_at AT TIME ZONE 'Asia/Shanghai')::date, model, api_key_id,
       COUNT(*), SUM(amount_micro), COALESCE(SUM(input_tokens), 0),
       COALESCE(SUM(output_tokens), 0)
  FROM billing_usageevent WHERE id = ANY(%s)
 GROUP BY 1, 2, 3, 4
 ORDER BY 1, 2, 3, 4
ON CONFLICT ON CONSTRAINT billing_dailyusage_unique DO UPDATE
   SET calls = d.calls + EXCLUDED.calls, amount_micro = d.amount_micro + EXCLUDED.amount_micro,
       input_tokens = d.input_tokens + EXCLUDED.input_tokens,
       output_tokens = d.output_tokens + EXCLUDED.output_tokens
"""


def _roll_up(event_ids) -> None:
    """Add just-settled events to the daily rollup (sorted rows: two settlers of
    different accounts never touch the same row, and each writes in one order)."""
    if event_ids:
        with connection.cursor() as cur:
            cur.execute(_ROLL_UP, [list(event_ids)])


# ---------------------------------------------------------------- low-balance notices (R-USE-4)


def threshold_micro(account):
    """The account's low-balance threshold in micro-units, or None (the user set none)."""
    t = account.low_balance_threshold
    return to_micro(t) if t is not None else None


def notify_crossings(account_id, threshold, before: int, after: int, event_key: str):
    """R-USE-4: one notice when the available balance falls below the user's
    threshold (the crossing itself, not every call below it), and one when it
    reaches zero and service stops. Called inside the settlement's (or purchase's)
    transaction. `threshold` is in micro-units (None: the user set none)."""
    if after >= before:
        return
    low = bool(threshold) and before >= threshold > after
    stopped = before > 0 and after == 0
    if not (low or stopped):
        return
    from accounts.models import BalanceAccount
    from notices.services import send_notice

    account = BalanceAccount.objects.select_related("user").get(pk=account_id)
    if low:
        send_notice(
            user=account.user,
            kind="low_balance",
            context={"available": from_micro(after), "threshold": from_micro(threshold)},
            dedupe_key=f"low_balance:{account_id}:{event_key}",
        )
    if stopped:
        send_notice(
            user=account.user,
            kind="service_stopped",
            context={},
            dedupe_key=f"service_stopped:{account_id}:{event_key}",
        )


# ---------------------------------------------------------------- the settler


_OLDEST = (
    "SELECT DISTINCT account_id FROM (SELECT account_id FROM billing_usageevent"
    " WHERE transaction_id IS NULL{skip}{slot} ORDER BY id LIMIT %s) AS oldest"
)
_SKIP_ROUNDS = 3  # how many times a chunk looks past accounts another transaction holds


def _oldest_owners(limit, passed, slots=None) -> list[int]:
    """The accounts of the oldest pending events, leaving out `passed` ones; with
    `slots` ((total, held slots)), only accounts in those slots."""
    skip, slot, params = "", "", []
    if passed:
        where, params = in_ids("account_id", passed)
        skip = f" AND NOT ({where})"
    if slots is not None:
        slot = " AND account_id %% %s = ANY(%s)"
        params = [*params, slots[0], sorted(slots[1])]
    with connection.cursor() as cur:
        cur.execute(_OLDEST.format(skip=skip, slot=slot), [*params, limit])
        return [row[0] for row in cur.fetchall()]


def settle_chunk(limit=None, *, now=None, slots=None) -> int:
    """One settler step: the oldest pending events (at most `limit`), grouped by
    account, settled in one database transaction. Accounts another transaction holds
    are skipped (their events wait for the next chunk), so settlers never queue on
    each other or on a refund; the chunk then looks past them (a few rounds), so one
    busy account with a backlog does not hold back everyone else's events. With
    `slots` ((total, held slots), from SettlerSlots.current) only the accounts of those
    slots are taken: N settlers settle disjoint accounts. Returns how many events were
    settled."""
    limit = limit or chunk_size()
    if slots is not None and not slots[1]:
        return 0  # this settler holds no slot (more settlers than slots): nothing is its own

    def run():
        # read before the transaction: an idle poll opens none
        owners = _oldest_owners(limit, [], slots)
        if not owners:
            return 0
        with transaction.atomic(durable=True):
            locked, passed = {}, []
            for _round in range(_SKIP_ROUNDS):
                got = lock_buckets(owners, skip_locked=True)
                locked.update(got)
                passed.extend(o for o in owners if o not in got)
                if len(got) == len(owners):
                    break
                # Skipped rows need no lock-order care: SKIP LOCKED never waits on an
                # account row, and a bucket row is only held by its account's holder
                # or the expiry sweep, which never waits either.
                owners = _oldest_owners(limit, [*passed, *locked], slots)
                if not owners:
                    break
            return settle_locked(locked, limit=limit, now=now)

    return retry_transaction(run, label="settle")


def settle_accounts(owner_ids, *, skip_locked=False) -> int:
    """Settle all pending usage of these accounts now, in its own transaction (waiting for
    their locks, or with `skip_locked` leaving out accounts another transaction holds).
    For readers that need exact figures without moving money, and for the grant expiry
    sweep, which locks bucket rows only."""
    owner_ids = sorted(set(owner_ids))
    if not owner_ids or not has_pending(owner_ids):
        return 0

    def run():
        with transaction.atomic(durable=not connection.in_atomic_block):
            locked = lock_buckets(owner_ids, skip_locked=skip_locked)
            return settle_locked(locked)

    if connection.in_atomic_block:
        return run()
    return retry_transaction(run, label="settle")


def settle_before_expiry(due, due_params, limit) -> bool:
    """For the grant expiry sweep (billing.services.ledger.expire_due_grants; `due` is its
    SQL condition on billing_grant). A grant pays for every event received before its
    expiry (R-USE-5): settle the pending usage of the accounts whose grants are about
    to be swept first (their own
    transaction, skipping accounts another transaction holds, so the sweep never
    waits; the sweep itself locks bucket rows only). Settlement plans each event
    with the grants that had not expired when it was received, so an event received
    after the expiry is not paid by the grant even if it settles before the sweep.

    It first passes the ingestion gate (metering.INGEST_GATE): an instant of the
    exclusive lock, so every ingestion stamped before now has committed and is
    seen below. If ingestion holds the gate longer than USAGE_EXPIRY_GATE_WAIT, this run
    sweeps nothing (False) and the next one tries again."""
    from django.db import OperationalError

    from .metering import INGEST_GATE

    with connection.cursor() as cur:
        cur.execute(f"SELECT 1 FROM billing_grant WHERE {due} LIMIT 1", due_params)  # noqa: S608
        if cur.fetchone() is None:
            return True
    wait_ms = int(float(getattr(settings, "USAGE_EXPIRY_GATE_WAIT", 2)) * 1000)
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                [f"{wait_ms}ms"],
            )
            before = cur.fetchone()[0]
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [INGEST_GATE])
            # as it was: inside a caller's transaction the setting would outlive this
            cur.execute("SELECT set_config('lock_timeout', %s, true)", [before])
    except OperationalError:  # lock_timeout: an ingestion still in flight
        return False
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT d.account_id FROM (SELECT account_id FROM billing_grant"  # noqa: S608
            f" WHERE {due} ORDER BY expires_at, id LIMIT %s) d WHERE EXISTS (SELECT 1"
            " FROM billing_usageevent c WHERE c.account_id = d.account_id"
            " AND c.transaction_id IS NULL)",
            [*due_params, limit],
        )
        owners = [row[0] for row in cur.fetchall()]
    if owners:
        settle_accounts(owners, skip_locked=True)
    return True


def has_pending(owner_ids) -> bool:
    where, params = in_ids("account_id", owner_ids)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT 1 FROM billing_usageevent WHERE {where} AND transaction_id IS NULL LIMIT 1",  # noqa: S608
            params,
        )
        return cur.fetchone() is not None


# ---------------------------------------------------------------- slots: settlers that scale out

# The first keys of the settlers' advisory locks (two-key form; INGEST_GATE is ...001):
# a slot's lock (second key: the slot) and each settler's presence (second key: its
# backend pid), so every settler can count the others without a table of its own.
SLOT_LOCK = 1_456_117_002
MEMBER_LOCK = 1_456_117_003
REBALANCE_SECONDS = 1.0  # how often a settler looks again (a dead one's slots: taken in ~1 s)


def settler_slots() -> int:
    """How many slots the accounts are partitioned into (settings.USAGE_SETTLER_SLOTS)."""
    return max(1, int(getattr(settings, "USAGE_SETTLER_SLOTS", 16)))


def slot_of(account_id: int, total: int | None = None) -> int:
    """An account's slot: its id modulo the number of slots (ids are dense, so the slots
    get equal numbers of accounts; the SQL of `_oldest_owners` says the same)."""
    return int(account_id) % (total or settler_slots())


_HELD = """
SELECT (SELECT COUNT(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
          AND l.database = d.oid AND l.classid = %(member)s::oid AND l.objsubid = 2),
       ARRAY(SELECT l.objid::int FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = d.oid AND l.classid = %(slot)s::oid AND l.objsubid = 2
              AND l.pid = pg_backend_pid()),
       ARRAY(SELECT l.objid::int FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = d.oid AND l.classid = %(slot)s::oid AND l.objsubid = 2),
       EXISTS(SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = d.oid AND l.classid = %(member)s::oid AND l.objsubid = 2
               AND l.pid = pg_backend_pid())
  FROM pg_database d WHERE d.datname = current_database()
"""


class SettlerSlots:
    """The slots one settler holds: PostgreSQL session advisory locks on its own
    connection, so a settler that dies (SIGKILL, lost host, closed connection) lets go
    of them with its session, and the others take them over at their next look (every
    REBALANCE_SECONDS). Each settler aims at an even share (slots / live settlers,
    rounded up): it gives back what is above its share and takes free slots up to it.
    The slots only keep N settlers off each other's accounts; exactly once rests on the
    account locks and the settle-once trigger as before, so a moment where two settlers
    reach one account (a hand-over, a broken connection) costs a skipped account, never
    a double charge. What this session holds is read back from pg_locks on every look:
    a connection Django reopened holds nothing, and the settler takes its share again."""

    def __init__(self, total: int | None = None):
        self.total = total or settler_slots()
        self.held: frozenset[int] = frozenset()
        self._next = 0.0

    def current(self):
        """The `slots` argument of settle_chunk: None when this settler holds every slot
        (no filter), else (total, held slots), looked at again when due."""
        if time.monotonic() >= self._next:
            self.rebalance()
        return None if len(self.held) == self.total else (self.total, self.held)

    def rebalance(self) -> frozenset[int]:
        keys = {"member": MEMBER_LOCK, "slot": SLOT_LOCK}
        with connection.cursor() as cur:
            cur.execute(_HELD, keys)
            members, mine, taken, present = cur.fetchone()
            if not present:
                cur.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())", [MEMBER_LOCK])
                members += 1
            share = -(-self.total // max(1, members))
            mine = set(mine)
            for slot in sorted(mine, reverse=True)[: max(0, len(mine) - share)]:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", [SLOT_LOCK, slot])
                mine.discard(slot)
            taken = set(taken)
            free = [s for s in range(self.total) if s not in taken]
            # start the search at this backend's own place: settlers starting together
            # try different slots instead of all racing for slot 0
            cur.execute("SELECT pg_backend_pid()")
            start = cur.fetchone()[0] % self.total
            free.sort(key=lambda s: (s - start) % self.total)
            for slot in free:
                if len(mine) >= share:
                    break
                cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [SLOT_LOCK, slot])
                if cur.fetchone()[0]:
                    mine.add(slot)
        self.held = frozenset(mine)
        self._next = time.monotonic() + REBALANCE_SECONDS
        return self.held

    def release(self):
        """Give every slot back (a settler that stops; a Celery stretch that ends)."""
        try:
            with connection.cursor() as cur:
                for slot in sorted(self.held):
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", [SLOT_LOCK, slot])
                cur.execute(
                    "SELECT pg_advisory_unlock(%s, pg_backend_pid())"
                    " FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = %s::oid AND objsubid = 2 AND pid = pg_backend_pid()",
                    [MEMBER_LOCK, MEMBER_LOCK],
                )
        except DatabaseError:  # the connection broke meanwhile: the locks went with it
            pass
        self.held = frozenset()


def run_settler(*, seconds=0.0, chunk=None, idle_sleep=None, stop=None, slots=None) -> int:
    """Settle chunk after chunk. With `seconds=0` until nothing is pending; otherwise
    keep going for that long, pausing `idle_sleep` when there is nothing to do (the
    continuous settler: settlement seconds behind ingestion, not minutes). Returns the
    number of events settled.

    `slots` (default: on for a continuous settler, `seconds > 0`): settle only the
    accounts of the slots this settler holds (SettlerSlots), so N settlers, on one host
    or many, settle disjoint accounts; off, it takes the oldest pending events of any
    account (a one-off drain: "until nothing is pending" means everyone's)."""
    idle = (
        idle_sleep
        if idle_sleep is not None
        else float(getattr(settings, "USAGE_SETTLE_IDLE", 0.05))
    )
    deadline = time.monotonic() + seconds
    limit = chunk or chunk_size()
    total = 0
    mine = SettlerSlots() if (seconds > 0 if slots is None else slots) else None
    with _index_scans(), _released(mine):
        while True:
            own = mine.current() if mine else None
            done = settle_chunk(limit, slots=own)
            if own is not None and done < limit and _behind(HELP_AFTER_SECONDS):
                # Its own slots are settled, others' are not (a skewed backlog, a slow or
                # just-dead settler): help with one chunk of anyone's oldest events. The
                # account locks (SKIP LOCKED) keep it off what their holder is settling.
                done += settle_chunk(limit)
            total += done
            if stop is not None and stop():
                return total
            if done >= limit:
                continue  # a full chunk: more is waiting
            if time.monotonic() >= deadline:
                if done:
                    continue  # draining: on until nothing is pending
                return total
            # A part chunk means the backlog is settled: wait `idle` for the next events
            # rather than settling them a few at a time (each chunk costs some ten
            # statements and a commit whatever its size: a settler polling without a
            # pause used a fifth of the 2 cores at 300 events/s). Lag: + `idle` at most.
            time.sleep(idle)


HELP_AFTER_SECONDS = 1.0  # a settler helps outside its slots when the oldest event waits longer


def _behind(seconds) -> bool:
    """Whether the oldest pending event has waited more than `seconds`."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT created_at < now() - make_interval(secs => %s) FROM billing_usageevent"
            " WHERE transaction_id IS NULL ORDER BY id LIMIT 1",
            [float(seconds)],
        )
        row = cur.fetchone()
    return bool(row and row[0])


@contextmanager
def _released(slots):
    try:
        yield
    finally:
        if slots is not None:
            slots.release()


@contextmanager
def _index_scans():
    """No bitmap scans on the settler's connection while it runs.

    The pending indexes keep an entry for every event settled since the last VACUUM. A
    bitmap scan visits the table for each of them on every step (an idle poll took
    250 ms with 600,000 settled entries); an index scan marks them dead the first time
    and skips them afterwards (3 ms). Reset at the end: a Celery worker's connection
    serves other jobs too. Inside a transaction (tests) nothing is changed."""
    if connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cur:
        cur.execute("SET enable_bitmapscan = off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cur:
                cur.execute("RESET enable_bitmapscan")
        except DatabaseError:  # the connection broke meanwhile: the setting went with it
            pass


def pending_summary() -> dict:
    """How much is waiting: events, amount, and the age of the oldest (for the admin,
    metrics and health)."""
    from django.db.models import Count, Min, Sum

    from ..models import UsageEvent

    row = UsageEvent.objects.filter(transaction__isnull=True).aggregate(
        events=Count("id"), micro=Sum("amount_micro"), oldest=Min("created_at")
    )
    age = (timezone.now() - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    return {"events": row["events"], "amount": from_micro(row["micro"] or 0), "oldest_age": age}


# ---------------------------------------------------------------- one call, settled at once


def _check_ids(request_id, model):
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 200:
        raise LedgerError("request_id must be 1–200 characters.", code="invalid_request_id")
    if not isinstance(model, str) or not model.strip() or len(model) > 100:
        raise LedgerError("model must be 1–100 characters.", code="invalid_model")


def _payer(api_key_or_account):
    """(api key id or None, balance account id, key state or None)."""
    x = api_key_or_account
    if hasattr(x, "account_id") and (hasattr(x, "secret_hash") or hasattr(x, "threshold_micro")):
        return x.pk, x.account_id, x.state  # accounts.ApiKey or a KeyRef
    return None, x.pk, None  # a BalanceAccount


def charge_usage(api_key_or_account, amount, *, request_id: str, model: str, durable=True):
    """Meter one call and settle it at once, in one transaction: the one-by-one way of
    charging that chunked settlement must equal (R-USE-5). The gateway API does not use
    it (it records and lets the settler charge); demo data, staff tools and tests do.

    Under the account's locks: a replay returns the first UsageEvent (`.replayed = True`;
    another account, key or amount is `request_id_conflict`); a locked or revoked key
    or an account that may not consume is refused with the stable codes (R-ACC-6,
    R-ACC-8); otherwise the event is stored and every pending event of the account,
    this one last, is settled in order (R-USE-2, R-USE-3, R-USE-4)."""
    from ..models import UsageEvent
    from .authorization import consumption_refusal, refuse
    from .engine import positive_micro

    micro = positive_micro(amount)
    _check_ids(request_id, model)
    key_id, account_id, key_state = _payer(api_key_or_account)

    def run():
        with transaction.atomic(durable=durable):
            locked = lock_buckets([account_id])
            prior = UsageEvent.objects.filter(request_id=request_id).first()
            if prior is None:
                refusal = consumption_refusal(key_state, locked[account_id].standing)
                if refusal:
                    refuse(refusal)
                prior = UsageEvent.objects.create(
                    request_id=request_id,
                    account_id=account_id,
                    api_key_id=key_id,
                    model=model,
                    amount_micro=micro,
                )
                prior.replayed = False
            else:
                if (prior.account_id, prior.api_key_id, prior.amount_micro) != (
                    account_id,
                    key_id,
                    micro,
                ):
                    raise LedgerError(
                        "This request id was already used for another call.",
                        code="request_id_conflict",
                    )
                prior.replayed = True
            settle_locked(locked)
            prior.refresh_from_db()
            return prior

    return retry_transaction(run, label="usage") if durable else run()
