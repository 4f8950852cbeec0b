"""The posting engine: the one writer of the books (R-LED-1, R-LED-4).

This module is the only one that INSERTs ledger transactions and postings or moves
the cached balances of buckets (`LedgerAccount.balance_micro`), lots
(`Lot.remaining_micro`, `Lot.held_micro`) and grants (`Grant.remaining_micro`);
every other service builds `Entry`/`Leg` values and hands them to one of its two
named writers:

- `write` / `write_rows`: any movement (top-ups, grants, settlement, holds, refunds,
  disputes, reversals): checks that each transaction's postings sum to zero (R-LED-1;
  PostgreSQL checks it again at commit) and writes the transactions, their postings and
  every cache they move in ONE statement;
- `write_grant_expiries`: the bulk grant expiry (billing.services.ledger
  .expire_due_grants), the same postings as an expiry entry for a whole batch of grants
  in one statement with no Python per grant.

`tests/ledger/test_one_writer.py` fails the suite when any other module writes those
tables (raw SQL or ORM). The engine also takes a movement's locks in the ledger's one
lock order (`lock_buckets`; billing/README.md, "Lock order": balance account rows,
then their bucket rows, each in ascending id order, so two operations can never
deadlock on each other) and holds the retry and idempotency helpers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.utils import timezone

from accounts.selectors import lock_standings
from core.money import CNY

from ..micro import FEN_MICRO, to_micro
from ..models import (
    USER_BUCKETS,
    AccountKind,
    GrantState,
    LedgerAccount,
    LedgerTransaction,
    TxnKind,
)

# No single movement exceeds ten million CNY: far above any top-up or call, far below
# BIGINT micro-units' range, so a runaway figure is refused instead of overflowing.
MAX_MOVEMENT_MICRO = 10_000_000 * 1_000_000


class LedgerError(ValidationError):
    """A ledger operation refused; `.code` is stable (API error codes come from it)."""


def positive_micro(amount, *, whole_fen=False) -> int:
    """Money → micro-units for a movement: CNY, > 0, ≤ 6 places (2 with whole_fen)."""
    if getattr(amount, "currency", None) is not None and str(amount.currency) != CNY:
        raise LedgerError(f"Only CNY is accepted, not {amount.currency}.", code="wrong_currency")
    try:
        micro = to_micro(amount)
    except ValidationError as exc:
        raise LedgerError(exc.messages[0], code=exc.code)
    if micro <= 0:
        raise LedgerError("The amount must be greater than zero.", code="non_positive_amount")
    if micro > MAX_MOVEMENT_MICRO:
        raise LedgerError(
            "This amount is larger than any one movement may be.", code="amount_too_large"
        )
    if whole_fen and micro % FEN_MICRO:
        raise LedgerError("This amount must be whole fen (2 places).", code="too_many_decimals")
    return micro


@dataclass
class Leg:
    ledger_account_id: int
    bucket: str
    micro: int
    lot_id: int | None = None
    grant_id: int | None = None
    holding_id: int | None = None  # a resource package (issue 23)


@dataclass
class Entry:
    kind: str
    account_id: int | None
    legs: list[Leg]
    idempotency_key: str | None = None
    memo: str = ""
    actor_id: int | None = None
    reverses_id: int | None = None
    txn: LedgerTransaction | None = field(default=None, repr=False)


class Buckets:
    """The locked bucket rows of one balance account, by kind, and the account's
    standing read under its row lock (None if there is no such balance account)."""

    __slots__ = ("owner_id", "rows", "standing")

    def __init__(self, owner_id, rows, standing=None):
        self.owner_id = owner_id
        self.rows = {row.kind: row for row in rows}
        self.standing = standing

    def __getitem__(self, kind) -> LedgerAccount:
        return self.rows[str(kind)]

    def micro(self, kind) -> int:
        return self.rows[str(kind)].balance_micro

    @property
    def spendable_micro(self) -> int:
        return self.micro("cash") + self.micro("trial") + self.micro("discount")

    @property
    def arrears_micro(self) -> int:
        return -self.micro("arrears")

    @property
    def available_micro(self) -> int:
        return max(0, self.spendable_micro - self.arrears_micro)

    def apply(self, legs):
        """Keep the in-memory copy in step with what `write` will do to the rows."""
        for leg in legs:
            row = self.rows.get(leg.bucket)
            if row is not None and row.pk == leg.ledger_account_id:
                row.balance_micro += leg.micro


class BucketRow:
    """A locked bucket row: just what the planner needs (no ORM instance per row)."""

    __slots__ = ("pk", "owner_id", "kind", "balance_micro")

    def __init__(self, pk, owner_id, kind, balance_micro):
        self.pk, self.owner_id, self.kind, self.balance_micro = pk, owner_id, kind, balance_micro


def in_ids(column, values):
    """`column IN (...)` for many integer ids: one array literal (no per-value
    placeholders to expand on the client)."""
    return f"{column} = ANY(%s::bigint[])", [_ints(values)]


def in_texts(column, values):
    """`column IN (...)` for many strings: one JSON parameter."""
    return f"{column} IN (SELECT json_array_elements_text(%s::json))", [json.dumps(list(values))]


def _select_buckets(owner_ids):
    where, params = in_ids("owner_id", owner_ids)
    with connection.cursor() as cur:
        sql = f"SELECT id, owner_id, kind, balance_micro FROM billing_ledgeraccount WHERE {where}"  # noqa: S608
        cur.execute(f"{sql} ORDER BY id FOR UPDATE", params)
        return [BucketRow(*row) for row in cur.fetchall()]


def lock_buckets(owner_ids, *, skip_locked=False) -> dict[int, Buckets]:
    """Take the locks of a movement for these balance accounts, in the lock order:
    first the balance account rows (ascending id; their standing is read under that
    lock, see accounts.selectors.lock_standings), then SELECT … FOR UPDATE of their
    bucket rows (ascending id). Lots and grants are read after this returns.

    Only the locks: a service that moves money takes them through
    `billing.services.settlement.lock_and_settle`, which also settles the accounts'
    pending usage first (R-USE-5); `tests/ledger/test_settle_first_rule.py` keeps every
    other service from calling this directly. `skip_locked` (the settler) leaves out
    accounts another transaction holds. Missing bucket rows are created first (once per
    account, ever).
    """
    owner_ids = sorted(set(owner_ids))
    if not owner_ids:
        return {}
    standings = lock_standings(owner_ids, skip_locked=skip_locked)
    if skip_locked:
        owner_ids = sorted(standings)
        if not owner_ids:
            return {}
    rows = _select_buckets(owner_ids)
    if len(rows) < len(owner_ids) * len(USER_BUCKETS):
        have = {(r.owner_id, r.kind) for r in rows}
        LedgerAccount.objects.bulk_create(
            [
                LedgerAccount(owner_id=o, kind=str(k))
                for o in owner_ids
                for k in USER_BUCKETS
                if (o, str(k)) not in have
            ],
            ignore_conflicts=True,
        )
        rows = _select_buckets(owner_ids)
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.owner_id].append(row)
    return {o: Buckets(o, grouped[o], standings.get(o)) for o in owner_ids}


def check_balanced(entry: Entry):
    if len(entry.legs) < 2:
        raise LedgerError("A ledger transaction needs two or more postings.", code="unbalanced")
    if any(leg.micro == 0 for leg in entry.legs):
        raise LedgerError("A posting cannot be zero.", code="unbalanced")
    if sum(leg.micro for leg in entry.legs) != 0:
        raise LedgerError("The postings of a transaction must sum to zero.", code="unbalanced")


def write(entries: list[Entry]) -> list[LedgerTransaction]:
    """Insert the transactions and their postings and move every cached balance, in
    one statement however many entries there are; returns the transactions (unsaved
    instances built from what was written, in entry order)."""
    now = timezone.now()
    ids = write_rows(entries, now=now)
    txns = []
    for entry, pk in zip(entries, ids, strict=True):
        entry.txn = LedgerTransaction(
            id=pk,
            kind=entry.kind,
            account_id=entry.account_id,
            idempotency_key=entry.idempotency_key,
            memo=entry.memo[:200],
            actor_id=entry.actor_id,
            reverses_id=entry.reverses_id,
            created_at=now,
        )
        entry.txn._state.adding = False
        txns.append(entry.txn)
    return txns


def _deltas(entries):
    bucket_delta = defaultdict(int)
    lot_delta = defaultdict(lambda: [0, 0])
    grant_delta = defaultdict(int)
    holding_delta = defaultdict(int)
    for entry in entries:
        for leg in entry.legs:
            if leg.bucket in USER_BUCKETS:
                bucket_delta[leg.ledger_account_id] += leg.micro
            if leg.lot_id and leg.bucket == AccountKind.CASH:
                lot_delta[leg.lot_id][0] += leg.micro
            elif leg.lot_id and leg.bucket == AccountKind.HOLD:
                lot_delta[leg.lot_id][1] += leg.micro
            if leg.grant_id:
                grant_delta[leg.grant_id] += leg.micro
            if leg.holding_id:
                holding_delta[leg.holding_id] += leg.micro
    return (
        {k: v for k, v in bucket_delta.items() if v},
        {k: v for k, v in lot_delta.items() if any(v)},
        {k: v for k, v in grant_delta.items() if v},
        {k: v for k, v in holding_delta.items() if v},
    )


def write_rows(entries: list[Entry], *, now=None) -> list[int]:
    """Write the entries and return the new transaction ids (in entry order). A grant
    spent to zero becomes used_up, and one refilled (a reversal) active again, in the
    same statement."""
    for entry in entries:
        check_balanced(entry)
    if not entries:
        return []
    now = now or timezone.now()
    txns, postings = [], []
    for i, e in enumerate(entries, start=1):
        txns.append(
            {
                "ord": i,
                "kind": str(e.kind),
                "account": e.account_id,
                "ikey": e.idempotency_key,
                "memo": e.memo[:200],
                "actor": e.actor_id,
                "rev": e.reverses_id,
            }
        )
        for leg in e.legs:
            postings.append(
                {
                    "ord": i,
                    "la": leg.ledger_account_id,
                    "bucket": str(leg.bucket),
                    "lot": leg.lot_id,
                    "gr": leg.grant_id,
                    "hd": leg.holding_id,
                    "amount": leg.micro,
                }
            )
    buckets, lots, grants, holdings = _deltas(entries)
    params = {
        "n": len(entries),
        "now": now,
        "txns": json.dumps(txns),
        "postings": json.dumps(postings),
        "b_id": _ints(buckets),
        "b_d": _ints(buckets.values()),
        "l_id": _ints(lots),
        "l_c": _ints(v[0] for v in lots.values()),
        "l_h": _ints(v[1] for v in lots.values()),
        "g_id": _ints(grants),
        "g_d": _ints(grants.values()),
        "h_id": _ints(holdings),
        "h_d": _ints(holdings.values()),
    }
    with connection.cursor() as cur:
        cur.execute(_WRITE, params)
        return [row[0] for row in cur.fetchall()]


# One statement for a whole write: ids drawn from the sequence first (so postings
# point at their transaction without relying on the order of RETURNING), then
# data-modifying CTEs over rows passed as JSON (one parameter each: cheap to send, no
# per-value quoting on the client) and, for the UPDATEs, integer array literals.
_WRITE = """
WITH ids AS MATERIALIZED (
    -- the sequence looked up once (an InitPlan), not per row: pg_get_serial_sequence is
    -- only STABLE, and per row it cost ~4 µs of catalog lookups (10x the nextval itself)
    SELECT nextval((SELECT pg_get_serial_sequence('billing_ledgertransaction', 'id')::regclass))
           AS id, o AS ord
      FROM generate_series(1, %(n)s) AS o
), t AS (
    INSERT INTO billing_ledgertransaction
           (id, kind, account_id, idempotency_key, memo, actor_id, reverses_id, created_at)
    SELECT ids.id, x.kind, x.account, x.ikey, x.memo, x.actor, x.rev, %(now)s
      FROM json_to_recordset(%(txns)s::json)
           AS x(ord bigint, kind text, account bigint, ikey text, memo text, actor bigint,
                rev bigint)
      JOIN ids USING (ord)
), p AS (
    INSERT INTO billing_posting
           (transaction_id, ledger_account_id, bucket, lot_id, grant_id, holding_id, amount_micro,
            currency)
    SELECT ids.id, y.la, y.bucket, y.lot, y.gr, y.hd, y.amount, 'CNY'
      FROM json_to_recordset(%(postings)s::json)
           AS y(ord bigint, la bigint, bucket text, lot bigint, gr bigint, hd bigint,
                amount bigint)
      JOIN ids USING (ord)
), b AS (
    UPDATE billing_ledgeraccount SET balance_micro = billing_ledgeraccount.balance_micro + v.d
      FROM unnest(%(b_id)s::bigint[], %(b_d)s::bigint[]) AS v(id, d)
     WHERE billing_ledgeraccount.id = v.id AND billing_ledgeraccount.id = ANY(%(b_id)s::bigint[])
), l AS (
    UPDATE billing_lot SET remaining_micro = billing_lot.remaining_micro + v.c,
                           held_micro = billing_lot.held_micro + v.h
      FROM unnest(%(l_id)s::bigint[], %(l_c)s::bigint[], %(l_h)s::bigint[]) AS v(id, c, h)
     WHERE billing_lot.id = v.id AND billing_lot.id = ANY(%(l_id)s::bigint[])
), g AS (
    UPDATE billing_grant SET
           remaining_micro = billing_grant.remaining_micro + v.d,
           state = CASE
               WHEN billing_grant.state = 'active' AND billing_grant.remaining_micro + v.d = 0
                   THEN 'used_up'
               WHEN billing_grant.state = 'used_up' AND billing_grant.remaining_micro + v.d > 0
                   THEN 'active'
               ELSE billing_grant.state END,
           ended_at = CASE
               WHEN billing_grant.state = 'active' AND billing_grant.remaining_micro + v.d = 0
                   THEN %(now)s
               WHEN billing_grant.state = 'used_up' AND billing_grant.remaining_micro + v.d > 0
                   THEN NULL
               ELSE billing_grant.ended_at END
      FROM unnest(%(g_id)s::bigint[], %(g_d)s::bigint[]) AS v(id, d)
     WHERE billing_grant.id = v.id AND billing_grant.id = ANY(%(g_id)s::bigint[])
), h AS (
    -- resource packages (issue 23): spent to zero is used up; expiry sets its own state
    UPDATE billing_packageholding SET
           remaining_micro = billing_packageholding.remaining_micro + v.d,
           state = CASE
               WHEN billing_packageholding.state = 'active'
                    AND billing_packageholding.remaining_micro + v.d = 0 THEN 'used_up'
               ELSE billing_packageholding.state END,
           ended_at = CASE
               WHEN billing_packageholding.state = 'active'
                    AND billing_packageholding.remaining_micro + v.d = 0 THEN %(now)s
               ELSE billing_packageholding.ended_at END
      FROM unnest(%(h_id)s::bigint[], %(h_d)s::bigint[]) AS v(id, d)
     WHERE billing_packageholding.id = v.id
       AND billing_packageholding.id = ANY(%(h_id)s::bigint[])
)
SELECT id FROM ids ORDER BY ord
"""


def _ints(values) -> str:
    """An integer array literal: a constant the planner can count, so the UPDATEs
    probe the primary key instead of scanning the table."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


# ---------------------------------------------------------------- the bulk grant expiry


# The engine's second writer: expiry as `_WRITE` would write it for one expiry entry per
# grant (grant −r, promotion expense +r; billing.services.ledger._end_grant_entry's
# postings), for a whole batch in one statement with no Python per grant (at 1,000,000
# grants the per-grant Python of the generic path cost more than the SQL). Grants are
# re-read here, under the bucket locks the caller's earlier statement took (a new READ
# COMMITTED snapshot): still due. They come as (grant id, locked bucket row id) pairs:
# an unnest the planner sizes small, so every join and UPDATE probes primary keys (an
# `= ANY(array)` filter made it pick sequential scans of the bucket table at 500,000
# rows).
_EXPIRE = """
WITH g AS MATERIALIZED (
    SELECT gr.id, gr.account_id, gr.kind, gr.remaining_micro AS r, x.la,
           nextval((SELECT pg_get_serial_sequence('billing_ledgertransaction', 'id')::regclass))
           AS txn
      FROM unnest(%(ids)s::bigint[], %(las)s::bigint[]) AS x(id, la)
      JOIN billing_grant gr ON gr.id = x.id
     WHERE gr.state = 'active' AND gr.remaining_micro > 0 AND gr.expires_at <= %(now)s
), t AS (
    INSERT INTO billing_ledgertransaction
           (id, kind, account_id, idempotency_key, memo, actor_id, reverses_id, created_at)
    SELECT txn, %(kind)s, account_id, NULL, 'Grant expired', NULL::bigint, NULL::bigint,
           %(now)s
      FROM g
), p AS (
    INSERT INTO billing_posting
           (transaction_id, ledger_account_id, bucket, lot_id, grant_id, amount_micro, currency)
    SELECT txn, la, kind, NULL::bigint, id, -r, 'CNY' FROM g
    UNION ALL
    SELECT txn, %(expense)s, 'promotion_expense', NULL::bigint, NULL::bigint, r, 'CNY' FROM g
), b AS (
    UPDATE billing_ledgeraccount SET balance_micro = billing_ledgeraccount.balance_micro - v.d
      FROM (SELECT la, SUM(r) AS d FROM g GROUP BY la) v
     WHERE billing_ledgeraccount.id = v.la
), u AS (
    UPDATE billing_grant SET remaining_micro = 0, state = %(expired)s, ended_at = %(now)s
      FROM g WHERE billing_grant.id = g.id
)
SELECT COUNT(*) FROM g
"""


def write_grant_expiries(pairs, *, expense_id, now) -> int:
    """End the grants of `pairs` ((grant id, id of its bucket row, which this transaction
    holds locked)) that are still active, funded and due at `now`: one EXPIRY ledger
    transaction per grant (grant −r, promotion expense `expense_id` +r), the bucket
    caches, and the grants expired at `now`, in one statement. Returns how many."""
    pairs = list(pairs)
    if not pairs:
        return 0
    with connection.cursor() as cur:
        cur.execute(
            _EXPIRE,
            {
                "ids": _ints(g for g, _ in pairs),
                "las": _ints(la for _, la in pairs),
                "now": now,
                "kind": TxnKind.EXPIRY.value,
                "expense": expense_id,
                "expired": GrantState.EXPIRED.value,
            },
        )
        return cur.fetchone()[0]


# ---------------------------------------------------------------- idempotency (R-LED-5)


def replayed(key):
    """The ledger transaction already written under this idempotency key, if any."""
    return LedgerTransaction.objects.filter(idempotency_key=key).first()


# SQLSTATEs PostgreSQL uses when it aborts a transaction that may simply be run again.
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
RETRY_ATTEMPTS = 4


def is_retryable(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure (the whole transaction was rolled back,
    nothing of it committed, so running it again is safe)."""
    while exc is not None:
        if getattr(exc, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        if getattr(exc, "pgcode", None) in RETRYABLE_SQLSTATES:
            return True
        exc = exc.__cause__
    return False


def retry_transaction(run, *, attempts=RETRY_ATTEMPTS, label="ledger"):
    """Run `run()` (which opens its own outermost transaction) and run it again when
    PostgreSQL aborts it as a deadlock victim or a serialization failure, with a short
    growing pause; after the last attempt a LedgerError with the stable code `retry`.
    Counted in the portal's metrics (ops: ledger_retries_total)."""
    import logging
    import random
    import time

    from django.db import OperationalError

    for attempt in range(1, attempts + 1):
        try:
            return run()
        except OperationalError as exc:
            if not is_retryable(exc):
                raise
            logging.getLogger("billing.retry").warning(
                "%s transaction aborted (%s), attempt %s of %s",
                label,
                getattr(exc.__cause__, "sqlstate", "?"),
                attempt,
                attempts,
            )
            _count_retry(label)
            if attempt == attempts:
                raise LedgerError("The ledger is busy; please retry.", code="retry") from exc
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter only
    raise AssertionError("unreachable")  # pragma: no cover


def _count_retry(label):
    try:
        from ops.metrics import LEDGER_RETRIES
    except ImportError:  # pragma: no cover - metrics are optional
        return
    LEDGER_RETRIES.labels(label).inc()


def run_idempotent(lookup, run):
    """Run `run()`; if a concurrent call with the same key won the unique
    constraint, return that call's result instead (R-LED-5)."""
    found = lookup()
    if found is not None:
        return found
    try:
        return run()
    except IntegrityError:
        found = lookup()
        if found is None:
            raise
        return found
