"""The posting engine every ledger service goes through.

It locks a balance account's bucket rows (always in ascending id order, so two
operations can never deadlock on each other), checks that each transaction's
postings sum to zero (R-LED-1; PostgreSQL checks it again at commit), writes
transactions and postings in bulk, and moves the cached balances of buckets,
lots and grants in the same database transaction (R-LED-4).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

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
    """The locked bucket rows of one balance account, by kind."""

    __slots__ = ("owner_id", "rows")

    def __init__(self, owner_id, rows):
        self.owner_id = owner_id
        self.rows = {row.kind: row for row in rows}

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


def lock_buckets(owner_ids) -> dict[int, Buckets]:
    """SELECT … FOR UPDATE the bucket rows of these balance accounts, in id order.

    Missing bucket rows are created first (once per account, ever).
    """
    owner_ids = sorted(set(owner_ids))
    if not owner_ids:
        return {}
    rows = list(
        LedgerAccount.objects.select_for_update().filter(owner_id__in=owner_ids).order_by("id")
    )
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
        rows = list(
            LedgerAccount.objects.select_for_update().filter(owner_id__in=owner_ids).order_by("id")
        )
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.owner_id].append(row)
    return {o: Buckets(o, grouped[o]) for o in owner_ids}


def check_balanced(entry: Entry):
    if len(entry.legs) < 2:
        raise LedgerError("A ledger transaction needs two or more postings.", code="unbalanced")
    if any(leg.micro == 0 for leg in entry.legs):
        raise LedgerError("A posting cannot be zero.", code="unbalanced")
    if sum(leg.micro for leg in entry.legs) != 0:
        raise LedgerError("The postings of a transaction must sum to zero.", code="unbalanced")


def write(entries: list[Entry]) -> list[LedgerTransaction]:
    """Insert the transactions and postings and move every cached balance. Set-based:
    a constant number of statements however many entries there are."""
    for entry in entries:
        check_balanced(entry)
    now = timezone.now()
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
    postings = []
    bucket_delta = defaultdict(int)
    lot_delta = defaultdict(lambda: [0, 0])
    grant_delta = defaultdict(int)
    for entry, txn in zip(entries, txns, strict=True):
        entry.txn = txn
        for leg in entry.legs:
            postings.append(
                Posting(
                    transaction_id=txn.pk,
                    ledger_account_id=leg.ledger_account_id,
                    bucket=leg.bucket,
                    lot_id=leg.lot_id,
                    grant_id=leg.grant_id,
                    amount_micro=leg.micro,
                )
            )
            if leg.bucket in USER_BUCKETS:
                bucket_delta[leg.ledger_account_id] += leg.micro
            if leg.lot_id and leg.bucket == AccountKind.CASH:
                lot_delta[leg.lot_id][0] += leg.micro
            elif leg.lot_id and leg.bucket == AccountKind.HOLD:
                lot_delta[leg.lot_id][1] += leg.micro
            if leg.grant_id:
                grant_delta[leg.grant_id] += leg.micro
    # Postings are never updated, so there is no need to read their ids back.
    Posting.objects.bulk_create(postings, batch_size=5000)
    bump("billing_ledgeraccount", ["balance_micro"], {k: (v,) for k, v in bucket_delta.items()})
    bump(
        "billing_lot",
        ["remaining_micro", "held_micro"],
        {k: tuple(v) for k, v in lot_delta.items()},
    )
    bump_grants(grant_delta)
    return txns


def _nonzero(values: dict) -> dict:
    return {k: v for k, v in values.items() if any(v)}


def bump(table, columns, deltas: dict):
    """UPDATE table SET col = col + delta for many rows in one statement."""
    deltas = _nonzero(deltas)
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
