"""Charging usage: the single call and the batch (R-USE-1 … R-USE-4).

The deduction order (R-USE-2), the arrears rule (R-USE-3) and the low-balance
crossing (R-USE-4) live here, once; prepaid purchases
(billing.services.purchases) plan with the same functions.

Both entry points take the ledger's locks through `lock_buckets` (balance account
rows, then bucket rows; billing/README.md, "Lock order") and decide whether the
account may consume on the standing read under that lock, so a charge racing a
freeze or suspension either commits before it or is refused (R-ACC-8, R-LED-6).
"""

from __future__ import annotations

from django.db import connection

from ..chart import platform_account_id
from ..micro import from_micro, micro_str, to_micro
from ..models import AccountKind, GrantKind
from .engine import (
    Buckets,
    Leg,
    in_ids,
)

# ---------------------------------------------------------------- deduction order (R-USE-2)

_KIND_RANK = {GrantKind.TRIAL: 0, GrantKind.DISCOUNT: 1}


class Source:
    """A grant or lot money can be drawn from, in memory while a charge is planned."""

    __slots__ = ("bucket", "lot_id", "grant_id", "remaining", "expires_at")

    def __init__(self, bucket, remaining, lot_id=None, grant_id=None, expires_at=None):
        self.bucket, self.remaining, self.lot_id, self.grant_id = (
            bucket,
            remaining,
            lot_id,
            grant_id,
        )
        self.expires_at = expires_at  # aware datetime, or None (lots; grants without expiry)


def as_datetime(value):
    """A timestamp column read through a raw cursor, as an aware datetime: PostgreSQL
    gives one; SQLite gives a naive datetime (or the text) of the UTC value Django
    stored."""
    from datetime import UTC, datetime

    if value is None:
        return None
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        value = parse_datetime(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def load_sources(buckets: dict[int, Buckets], now) -> dict[int, list[Source]]:
    """Every account's spendable grants and lots in deduction order (R-USE-2):
    trial by soonest expiry, then discount by soonest expiry then age, then
    cash lots oldest first. Grants that expired by `now` are left out; the settler
    passes the receipt time of its oldest event, and `plan_deduction` then skips a
    grant for each event received after it expired.
    Raw SQL: this runs on every charge, and the ORM's query building costs more
    CPU than the query itself. Read after `lock_buckets` (lots and grants come
    last in the lock order)."""
    out = {owner: [] for owner in buckets}
    with_grants = [o for o, b in buckets.items() if b.micro("trial") > 0 or b.micro("discount") > 0]
    with_cash = [o for o, b in buckets.items() if b.micro("cash") > 0]
    with connection.cursor() as cur:
        if with_grants:
            where, params = in_ids("account_id", with_grants)
            cur.execute(
                "SELECT id, account_id, kind, remaining_micro, expires_at, created_at"  # noqa: S608
                f" FROM billing_grant WHERE {where}"
                " AND state = 'active' AND remaining_micro > 0"
                " AND (expires_at IS NULL OR expires_at > %s)",
                [*params, connection.ops.adapt_datetimefield_value(now)],
            )
            # (no expiry sorts last; values compare as datetimes, or as ISO text on SQLite)
            for gid, owner, kind, remaining, expires, _created in sorted(
                cur.fetchall(),
                key=lambda g: (_KIND_RANK[g[2]], g[4] is None, g[4] or 0, g[5], g[0]),
            ):
                out[owner].append(
                    Source(kind, remaining, grant_id=gid, expires_at=as_datetime(expires))
                )
        if with_cash:
            where, params = in_ids("account_id", with_cash)
            cur.execute(
                "SELECT id, account_id, remaining_micro FROM billing_lot"  # noqa: S608
                f" WHERE {where} AND remaining_micro > 0 ORDER BY created_at, id",
                params,
            )
            for lid, owner, remaining in cur.fetchall():
                out[owner].append(Source(AccountKind.CASH.value, remaining, lot_id=lid))
    return out


def plan_deduction(micro, sources, buckets: Buckets, at=None):
    """Draw `micro` from the sources in order; the rest becomes arrears (postpaid,
    R-USE-3). Returns (legs, split, parts) and moves the in-memory buckets to match.
    `at` is when the usage was received: a grant that had expired by then pays nothing
    (a grant pays for the events received before its expiry, R-USE-5).
    A prepaid purchase checks that the sources cover the price before planning."""
    legs, split = [], []
    parts = {"trial": 0, "discount": 0, "cash": 0, "arrears": 0}
    left = micro
    for src in sources:
        if not left:
            break
        if src.remaining <= 0:
            continue
        if at is not None and src.expires_at is not None and src.expires_at <= at:
            continue
        take = min(left, src.remaining)
        src.remaining -= take
        left -= take
        legs.append(
            Leg(buckets[src.bucket].pk, src.bucket, -take, lot_id=src.lot_id, grant_id=src.grant_id)
        )
        parts[src.bucket] += take
        ref = {"lot": src.lot_id} if src.lot_id else {"grant": src.grant_id}
        split.append({"bucket": src.bucket, **ref, "amount": micro_str(take)})
    if left:
        legs.append(Leg(buckets["arrears"].pk, "arrears", -left))
        parts["arrears"] = left
        split.append({"bucket": "arrears", "amount": micro_str(left)})
    legs.append(Leg(platform_account_id(AccountKind.REVENUE), "revenue", micro))
    buckets.apply(legs)
    return legs, split, parts


# ---------------------------------------------------------------- low-balance notices (R-USE-4)


def threshold_micro(account):
    t = account.low_balance_threshold
    return to_micro(t) if t is not None else None


def notify_crossings(account_id, threshold, before: int, after: int, event_key: str):
    """R-USE-4: one notice when the available balance falls below the user's
    threshold (the crossing itself, not every call below it), and one when it
    reaches zero and service stops. Called inside the charge's transaction.
    `threshold` is in micro-units (None: the user set none)."""
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
