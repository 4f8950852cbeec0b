"""The deduction order (R-USE-2) with arrears for what nothing covers (R-USE-3).

Which grants and lots pay for usage, and in what order, lives here once: settlement
(billing.services.settlement) plans every pending event with it, and prepaid purchases
(billing.services.purchases) plan their price with it after checking that the sources
cover it. Planning only: the legs go to the engine (billing.services.engine), which
writes them.
"""

from __future__ import annotations

import json

from django.db import connection

from ..chart import platform_account_id
from ..micro import micro_str
from ..models import AccountKind, GrantKind
from .engine import Buckets, Leg, in_ids

_KIND_RANK = {GrantKind.TRIAL: 0, GrantKind.DISCOUNT: 1}


class Source:
    """A grant or lot money can be drawn from, in memory while a deduction is planned."""

    __slots__ = ("bucket", "lot_id", "grant_id", "remaining", "expires_at", "holding_id", "models")

    def __init__(
        self,
        bucket,
        remaining,
        lot_id=None,
        grant_id=None,
        expires_at=None,
        holding_id=None,
        models=None,
    ):
        self.bucket, self.remaining, self.lot_id, self.grant_id = (
            bucket,
            remaining,
            lot_id,
            grant_id,
        )
        self.expires_at = expires_at  # aware datetime, or None (lots; grants without expiry)
        # a resource package (R-PKG-3): pays only for these models
        self.holding_id, self.models = holding_id, models


def load_sources(buckets: dict[int, Buckets], now) -> dict[int, list[Source]]:
    """Every account's spendable grants and lots in deduction order (R-USE-2):
    trial by soonest expiry, then discount by soonest expiry then age, then
    cash lots oldest first. Grants that expired by `now` are left out; the settler
    passes the receipt time of its oldest event, and `plan_deduction` then skips a
    grant for each event received after it expired.
    Raw SQL: this runs in every settlement and purchase, and the ORM's query building
    costs more CPU than the query itself. Read after `lock_buckets` (lots and grants
    come last in the lock order)."""
    out = {owner: [] for owner in buckets}
    with_packages = [o for o, b in buckets.items() if b.rows.get("package") and b.micro("package")]
    with_grants = [o for o, b in buckets.items() if b.micro("trial") > 0 or b.micro("discount") > 0]
    with_cash = [o for o, b in buckets.items() if b.micro("cash") > 0]
    with connection.cursor() as cur:
        if with_packages:
            # R-PKG-3: packages first, soonest expiry first (they pay only for their
            # models; plan_deduction skips them for other models and for purchases)
            where, params = in_ids("account_id", with_packages)
            cur.execute(
                "SELECT id, account_id, remaining_micro, expires_at, models_covered"  # noqa: S608
                f" FROM billing_packageholding WHERE {where}"
                " AND state = 'active' AND remaining_micro > 0 AND expires_at > %s"
                " ORDER BY expires_at, id",
                [*params, now],
            )
            for hid, owner, remaining, expires, covered in cur.fetchall():
                if isinstance(covered, str):
                    covered = json.loads(covered)
                out[owner].append(
                    Source(
                        AccountKind.PACKAGE.value,
                        remaining,
                        expires_at=expires,
                        holding_id=hid,
                        models=frozenset(covered),
                    )
                )
        if with_grants:
            where, params = in_ids("account_id", with_grants)
            cur.execute(
                "SELECT id, account_id, kind, remaining_micro, expires_at, created_at"  # noqa: S608
                f" FROM billing_grant WHERE {where}"
                " AND state = 'active' AND remaining_micro > 0"
                " AND (expires_at IS NULL OR expires_at > %s)",
                [*params, now],
            )
            # (no expiry sorts last)
            for gid, owner, kind, remaining, expires, _created in sorted(
                cur.fetchall(),
                key=lambda g: (_KIND_RANK[g[2]], g[4] is None, g[4] or 0, g[5], g[0]),
            ):
                out[owner].append(Source(kind, remaining, grant_id=gid, expires_at=expires))
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


def plan_deduction(micro, sources, buckets: Buckets, at=None, model=None):
    """Draw `micro` from the sources in order; the rest becomes arrears (postpaid,
    R-USE-3). Returns (legs, split, parts) and moves the in-memory buckets to match.
    `at` is when the usage was received: a grant that had expired by then pays nothing
    (a grant pays for the events received before its expiry, R-USE-5).
    A prepaid purchase checks that the sources cover the price before planning.
    `model` is the usage event's model: a resource package pays only for the models it
    covers (R-PKG-3; with no model, as for a purchase, packages pay nothing)."""
    legs, split = [], []
    parts = {"trial": 0, "discount": 0, "cash": 0, "arrears": 0, "package": 0}
    left = micro
    for src in sources:
        if not left:
            break
        if src.remaining <= 0:
            continue
        if src.models is not None and model not in src.models:
            continue
        if at is not None and src.expires_at is not None and src.expires_at <= at:
            continue
        take = min(left, src.remaining)
        src.remaining -= take
        left -= take
        legs.append(
            Leg(
                buckets[src.bucket].pk,
                src.bucket,
                -take,
                lot_id=src.lot_id,
                grant_id=src.grant_id,
                holding_id=src.holding_id,
            )
        )
        parts[src.bucket] += take
        if src.holding_id:
            ref = {"package": src.holding_id}
        else:
            ref = {"lot": src.lot_id} if src.lot_id else {"grant": src.grant_id}
        split.append({"bucket": src.bucket, **ref, "amount": micro_str(take)})
    if left:
        legs.append(Leg(buckets["arrears"].pk, "arrears", -left))
        parts["arrears"] = left
        split.append({"bucket": "arrears", "amount": micro_str(left)})
    legs.append(Leg(platform_account_id(AccountKind.REVENUE), "revenue", micro))
    buckets.apply(legs)
    return legs, split, parts
