"""The posting engine every ledger service goes through.

It takes a movement's locks in the ledger's one lock order (billing/README.md,
"Lock order": balance account rows, then their bucket rows, each in ascending id
order, so two operations can never deadlock on each other), checks that each
transaction's postings sum to zero (R-LED-1; PostgreSQL checks it again at commit), writes
transactions and postings in bulk, and moves the cached balances of buckets,
lots and grants in the same database transaction (R-LED-4).
"""

from __future__ import annotations

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
    Posting,
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
    """`column IN (...)` for many integer ids: one array literal on PostgreSQL (no
    per-value placeholders to expand on the client), placeholders elsewhere."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", [_ints(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def in_texts(column, values):
    """`column IN (...)` for many strings: one JSON parameter on PostgreSQL."""
    values = list(values)
    if connection.vendor == "postgresql":
        import json

        return f"{column} IN (SELECT json_array_elements_text(%s::json))", [json.dumps(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def _select_buckets(owner_ids):
    where, params = in_ids("owner_id", owner_ids)
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cur:
        sql = f"SELECT id, owner_id, kind, balance_micro FROM billing_ledgeraccount WHERE {where}"  # noqa: S608
        cur.execute(f"{sql} ORDER BY id{lock}", params)
        return [BucketRow(*row) for row in cur.fetchall()]


def lock_buckets(owner_ids, *, skip_locked=False) -> dict[int, Buckets]:
    """Take the locks of a movement for these balance accounts, in the lock order:
    first the balance account rows (ascending id; their standing is read under that
    lock, see accounts.selectors.lock_standings), then SELECT … FOR UPDATE of their
    bucket rows (ascending id). Lots and grants are read after this returns.

    Only the locks: a service that moves money takes them through
    `billing.services.settlement.lock_and_settle`, which also settles the accounts'
    pending usage first (R-USE-5); `tests/test_layers.py` keeps every other service
    from calling this directly. `skip_locked` (the settler) leaves out accounts another
    transaction holds. Missing bucket rows are created first (once per account, ever).
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


def write(entries: list[Entry], *, charges=None) -> list[LedgerTransaction]:
    """Insert the transactions (and their postings, and `charges[i]` for entry i when
    given) and move every cached balance. A constant number of statements however
    many entries there are; on PostgreSQL a single statement."""
    now = timezone.now()
    ids = write_rows(entries, charges=charges, now=now)
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
    return (
        {k: v for k, v in bucket_delta.items() if v},
        {k: v for k, v in lot_delta.items() if any(v)},
        {k: v for k, v in grant_delta.items() if v},
    )


CHARGE_FIELDS = (
    "request_id",
    "account_id",
    "api_key_id",
    "model",
    "amount_micro",
    "trial_micro",
    "discount_micro",
    "cash_micro",
    "arrears_micro",
    "split",
)


def write_rows(entries: list[Entry], *, charges=None, now=None, grant_end_state=None) -> list[int]:
    """Write and return the new transaction ids (in entry order). Charges, when
    given, get their `pk` and `transaction_id` set. `grant_end_state` ends every
    grant the entries touch in that state (expiry, void) in the same statement."""
    for entry in entries:
        check_balanced(entry)
    if not entries:
        return []
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        return _write_pg(entries, charges, now, grant_end_state)
    return _write_orm(entries, charges, now, grant_end_state)


def _write_orm(entries, charges, now, grant_end_state=None):
    txns = LedgerTransaction.objects.bulk_create(
        [
            LedgerTransaction(
                kind=e.kind,
                account_id=e.account_id,
                idempotency_key=e.idempotency_key,
                memo=e.memo[:200],
                actor_id=e.actor_id,
                reverses_id=e.reverses_id,
                created_at=now,
            )
            for e in entries
        ]
    )
    postings = [
        Posting(
            transaction_id=txn.pk,
            ledger_account_id=leg.ledger_account_id,
            bucket=leg.bucket,
            lot_id=leg.lot_id,
            grant_id=leg.grant_id,
            amount_micro=leg.micro,
        )
        for entry, txn in zip(entries, txns, strict=True)
        for leg in entry.legs
    ]
    Posting.objects.bulk_create(postings, batch_size=5000)
    buckets, lots, grants = _deltas(entries)
    bump("billing_ledgeraccount", ["balance_micro"], {k: (v,) for k, v in buckets.items()})
    bump("billing_lot", ["remaining_micro", "held_micro"], {k: tuple(v) for k, v in lots.items()})
    bump_grants(grants)
    if grant_end_state and grants:
        from ..models import Grant

        Grant.objects.filter(pk__in=list(grants)).update(state=grant_end_state, ended_at=now)
    if charges:
        from ..models import UsageEvent

        rows = [
            c
            if isinstance(c, UsageEvent)
            else UsageEvent(**{f: getattr(c, f) for f in CHARGE_FIELDS})
            for c in charges
        ]
        for row, txn in zip(rows, txns, strict=False):
            row.transaction_id, row.created_at = txn.pk, now
        UsageEvent.objects.bulk_create(rows)
        for charge, row in zip(charges, rows, strict=True):
            charge.pk, charge.transaction_id, charge.created_at = row.pk, row.transaction_id, now
    return [t.pk for t in txns]


# One statement for a whole write on PostgreSQL: ids drawn from the sequence first
# (so postings and charges point at their transaction without relying on the
# order of RETURNING), then data-modifying CTEs over rows passed as JSON (one
# parameter each: cheap to send, no per-value quoting on the client) and, for the
# UPDATEs, integer array literals.
_PG_WRITE = """
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
           (transaction_id, ledger_account_id, bucket, lot_id, grant_id, amount_micro, currency)
    SELECT ids.id, y.la, y.bucket, y.lot, y.gr, y.amount, 'CNY'
      FROM json_to_recordset(%(postings)s::json)
           AS y(ord bigint, la bigint, bucket text, lot bigint, gr bigint, amount bigint)
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
           state = COALESCE(%(g_end)s::text, CASE
               WHEN billing_grant.state = 'active' AND billing_grant.remaining_micro + v.d = 0
                   THEN 'used_up'
               WHEN billing_grant.state = 'used_up' AND billing_grant.remaining_micro + v.d > 0
                   THEN 'active'
               ELSE billing_grant.state END),
           ended_at = CASE
               WHEN %(g_end)s::text IS NOT NULL THEN %(now)s
               WHEN billing_grant.state = 'active' AND billing_grant.remaining_micro + v.d = 0
                   THEN %(now)s
               WHEN billing_grant.state = 'used_up' AND billing_grant.remaining_micro + v.d > 0
                   THEN NULL
               ELSE billing_grant.ended_at END
      FROM unnest(%(g_id)s::bigint[], %(g_d)s::bigint[]) AS v(id, d)
     WHERE billing_grant.id = v.id AND billing_grant.id = ANY(%(g_id)s::bigint[])
), c AS (
    INSERT INTO billing_usageevent
           (request_id, account_id, api_key_id, model, amount_micro, trial_micro, discount_micro,
            cash_micro, arrears_micro, split, transaction_id, created_at)
    SELECT z.rid, z.account, z.key, z.model, z.amount, z.trial, z.discount, z.cash,
           z.arrears, z.split, ids.id, %(now)s
      FROM json_to_recordset(%(charges)s::json)
           AS z(ord bigint, rid text, account bigint, key bigint, model text, amount bigint,
                trial bigint, discount bigint, cash bigint, arrears bigint, split jsonb)
      JOIN ids USING (ord)
    RETURNING id, transaction_id
)
SELECT ids.id, c.id FROM ids LEFT JOIN c ON c.transaction_id = ids.id ORDER BY ids.ord
"""


def _ints(values) -> str:
    """An integer array literal: a constant the planner can count, so the UPDATEs
    below probe the primary key instead of scanning the table."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _write_pg(entries, charges, now, grant_end_state=None):
    """`charges[i]`, when given, belongs to `entries[i]`."""
    import json

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
                    "amount": leg.micro,
                }
            )
    buckets, lots, grants = _deltas(entries)
    charges = charges or []
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
        "g_end": grant_end_state,
        "charges": json.dumps(
            [
                {
                    "ord": i,
                    "rid": c.request_id,
                    "account": c.account_id,
                    "key": c.api_key_id,
                    "model": c.model,
                    "amount": c.amount_micro,
                    "trial": c.trial_micro,
                    "discount": c.discount_micro,
                    "cash": c.cash_micro,
                    "arrears": c.arrears_micro,
                    "split": c.split,
                }
                for i, c in enumerate(charges, start=1)
            ]
        ),
    }
    with connection.cursor() as cur:
        cur.execute(_PG_WRITE, params)
        rows = cur.fetchall()
    for charge, (txn_id, charge_id) in zip(charges, rows, strict=False):
        charge.pk, charge.transaction_id, charge.created_at = charge_id, txn_id, now
        if hasattr(charge, "_state"):
            charge._state.adding = False
    return [txn_id for txn_id, _ in rows]


def bump(table, columns, deltas: dict):
    """UPDATE table SET col = col + delta for many rows in one statement."""
    deltas = {k: v for k, v in deltas.items() if any(v)}
    if not deltas:
        return
    sets = ", ".join(f"{c} = {table}.{c} + v.d{i}" for i, c in enumerate(columns))
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cols = ", ".join(f"d{i}" for i in range(len(columns)))
            row = "(" + ", ".join(["%s::bigint"] * (len(columns) + 1)) + ")"
            params = [x for k, v in deltas.items() for x in (k, *v)]
            values = ", ".join([row] * len(deltas))
            sql = f"UPDATE {table} SET {sets} FROM (VALUES {values}) AS v(id, {cols})"  # noqa: S608
            cur.execute(sql + f" WHERE {table}.id = v.id", params)
        else:
            plain = ", ".join(f"{c} = {c} + %s" for c in columns)
            cur.executemany(
                f"UPDATE {table} SET {plain} WHERE id = %s",  # noqa: S608 (constant names)
                [(*v, k) for k, v in deltas.items()],
            )


def bump_grants(deltas: dict):
    """Move grants' cached remaining; a grant spent to zero becomes used_up, and one
    refilled by a reversal becomes active again."""
    deltas = {k: v for k, v in deltas.items() if v}
    if not deltas:
        return
    bump("billing_grant", ["remaining_micro"], {k: (v,) for k, v in deltas.items()})
    from ..models import Grant

    Grant.objects.filter(pk__in=deltas, state=GrantState.ACTIVE, remaining_micro=0).update(
        state=GrantState.USED_UP, ended_at=timezone.now()
    )
    Grant.objects.filter(pk__in=deltas, state=GrantState.USED_UP, remaining_micro__gt=0).update(
        state=GrantState.ACTIVE, ended_at=None
    )


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
