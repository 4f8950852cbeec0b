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

import json
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..chart import platform_account_id
from ..micro import from_micro, to_micro
from ..models import AccountKind, Charge, GrantKind, TxnKind
from .authorization import REFUSAL_MESSAGES, KeyRef, consumption_refusal, refuse
from .engine import (
    CHARGE_FIELDS,
    Buckets,
    Entry,
    LedgerError,
    Leg,
    in_ids,
    in_texts,
    lock_buckets,
    positive_micro,
    retry_transaction,
    write_rows,
)

# ---------------------------------------------------------------- deduction order (R-USE-2)

_KIND_RANK = {GrantKind.TRIAL: 0, GrantKind.DISCOUNT: 1}


class Source:
    """A grant or lot money can be drawn from, in memory while a charge is planned."""

    __slots__ = ("bucket", "lot_id", "grant_id", "remaining")

    def __init__(self, bucket, remaining, lot_id=None, grant_id=None):
        self.bucket, self.remaining, self.lot_id, self.grant_id = (
            bucket,
            remaining,
            lot_id,
            grant_id,
        )


def load_sources(buckets: dict[int, Buckets], now) -> dict[int, list[Source]]:
    """Every account's spendable grants and lots in deduction order (R-USE-2):
    trial by soonest expiry, then discount by soonest expiry then age, then
    cash lots oldest first. Expired grants not yet swept are never spent.
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
            for gid, owner, kind, remaining, _exp, _created in sorted(
                cur.fetchall(),
                key=lambda g: (_KIND_RANK[g[2]], g[4] is None, g[4] or 0, g[5], g[0]),
            ):
                out[owner].append(Source(kind, remaining, grant_id=gid))
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


def plan_deduction(micro, sources, buckets: Buckets):
    """Draw `micro` from the sources in order; the rest becomes arrears (postpaid,
    R-USE-3). Returns (legs, split, parts) and moves the in-memory buckets to match.
    A prepaid purchase checks that the sources cover the price before planning."""
    legs, split = [], []
    parts = {"trial": 0, "discount": 0, "cash": 0, "arrears": 0}
    left = micro
    for src in sources:
        if not left:
            break
        if src.remaining <= 0:
            continue
        take = min(left, src.remaining)
        src.remaining -= take
        left -= take
        legs.append(
            Leg(buckets[src.bucket].pk, src.bucket, -take, lot_id=src.lot_id, grant_id=src.grant_id)
        )
        parts[src.bucket] += take
        ref = {"lot": src.lot_id} if src.lot_id else {"grant": src.grant_id}
        split.append({"bucket": src.bucket, **ref, "amount": str(from_micro(take).amount)})
    if left:
        legs.append(Leg(buckets["arrears"].pk, "arrears", -left))
        parts["arrears"] = left
        split.append({"bucket": "arrears", "amount": str(from_micro(left).amount)})
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


# ---------------------------------------------------------------- one call


def _check_ids(request_id, model):
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 200:
        raise LedgerError("request_id must be 1–200 characters.", code="invalid_request_id")
    if not isinstance(model, str) or not model.strip() or len(model) > 100:
        raise LedgerError("model must be 1–100 characters.", code="invalid_model")


def _charge_exists(request_id) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM billing_charge WHERE request_id = %s", [request_id])
        return cur.fetchone() is not None


def _replay(existing: Charge, account_id) -> Charge:
    if existing.account_id != account_id:
        raise LedgerError(
            "This request id was already used for another account.", code="request_id_conflict"
        )
    existing.replayed = True
    return existing


def _payer(api_key_or_account):
    """(api key id or None, balance account id, low-balance threshold in micro-units,
    key state or None). The account's standing is read later, under its lock."""
    x = api_key_or_account
    if isinstance(x, KeyRef):
        return x.pk, x.account_id, x.threshold_micro, x.state
    if hasattr(x, "secret_hash"):  # accounts.ApiKey
        return x.pk, x.account_id, threshold_micro(x.account), x.state
    return None, x.pk, threshold_micro(x), None  # a BalanceAccount


# A usage transaction carries no idempotency key of its own: its Charge row, written
# in the same statement, holds the request id under a unique constraint (R-LED-5).


def charge_usage(
    api_key_or_account, amount, *, request_id: str, model: str, durable: bool = True
) -> Charge:
    """Charge one API call (postpaid): grants and lots in R-USE-2 order, the rest
    as arrears (R-USE-3). Replaying a request id returns the first Charge
    (with `.replayed = True`) and moves nothing (R-LED-5). A locked or revoked key,
    or an account that may not consume (its standing read under its row lock), is
    refused with the stable code of `consumption_refusal` (R-ACC-6, R-ACC-8).

    Takes an accounts.ApiKey, a KeyRef (from resolve_api_keys) or a BalanceAccount.
    It is an outermost transaction (durable) unless a caller that owns the
    transaction says otherwise (e.g. demo seeding)."""
    micro = positive_micro(amount)
    _check_ids(request_id, model)
    key_id, account_id, threshold, key_state = _payer(api_key_or_account)

    def run():
        for _attempt in range(3):
            try:
                with transaction.atomic(durable=durable):
                    buckets = lock_buckets([account_id])[account_id]
                    if _charge_exists(request_id):
                        return _replay(Charge.objects.get(request_id=request_id), account_id)
                    # after the replay check: a replay still returns its first result
                    refusal = consumption_refusal(key_state, buckets.standing)
                    if refusal:
                        refuse(refusal)
                    sources = load_sources({account_id: buckets}, timezone.now())[account_id]
                    before = buckets.available_micro
                    legs, split, parts = plan_deduction(micro, sources, buckets)
                    charge = Charge(
                        request_id=request_id,
                        account_id=account_id,
                        api_key_id=key_id,
                        model=model,
                        amount_micro=micro,
                        trial_micro=parts["trial"],
                        discount_micro=parts["discount"],
                        cash_micro=parts["cash"],
                        arrears_micro=parts["arrears"],
                        split=split,
                    )
                    write_rows(
                        [Entry(TxnKind.USAGE, account_id, legs, None, model[:200])],
                        charges=[charge],
                    )
                    notify_crossings(
                        account_id, threshold, before, buckets.available_micro, request_id
                    )
                    charge.replayed = False
                    return charge
            except IntegrityError:
                # the same request id committed by a concurrent call for another account
                existing = Charge.objects.filter(request_id=request_id).first()
                if existing:
                    return _replay(existing, account_id)
                raise
        raise LedgerError("Could not charge; please retry.", code="retry")  # pragma: no cover

    # a deadlock victim or serialization failure is rolled back whole: run it again
    return retry_transaction(run, label="usage") if durable else run()


# ---------------------------------------------------------------- a batch of calls


@dataclass
class UsageEvent:
    request_id: str
    api_key: KeyRef
    model: str
    micro: int


class ChargeRow:
    """A charge as the batch returns it: the Charge fields, without an ORM instance."""

    __slots__ = ("pk", *CHARGE_FIELDS, "transaction_id", "created_at", "replayed", "error")

    def __init__(self, **values):
        self.pk = self.transaction_id = self.created_at = None
        self.replayed = False
        self.error = None  # (code, message) when this event was refused
        for name, value in values.items():
            setattr(self, name, value)

    def replay(self):
        copy = ChargeRow(**{f: getattr(self, f) for f in self.__slots__})
        copy.replayed = True
        return copy


_ROW_FIELDS = ("pk", *CHARGE_FIELDS, "transaction_id", "created_at")


def charge_usage_batch(events: list[UsageEvent]) -> list[ChargeRow]:
    """Charge many calls at once with set-based work: a fixed number of statements
    per batch (lock the accounts, lock their buckets, look up replays, load grants and
    lots, one write of all transactions, postings, charges and cached balances),
    whatever its size.

    Returns one ChargeRow per event, in order; replays (of earlier batches or of an
    earlier event in this batch) come back with `.replayed = True`, and a request id
    already used by another account, or an event whose key or account may not consume
    (standing read under the account's lock), with `.error = (code, message)`."""
    for ev in events:
        _check_ids(ev.request_id, ev.model)
        if ev.micro <= 0:
            raise LedgerError("The amount must be greater than zero.", code="non_positive_amount")

    def run():
        for _attempt in range(3):
            try:
                return _charge_batch(events)
            except IntegrityError:
                continue  # a concurrent batch committed some of these request ids: replays now
        raise LedgerError("Could not charge the batch; please retry.", code="retry")

    # a deadlock victim or serialization failure is rolled back whole: run it again
    return retry_transaction(run, label="usage_batch")


def _existing_charges(request_ids) -> dict[str, ChargeRow]:
    where, params = in_texts("request_id", request_ids)
    cols = ", ".join(c if c != "pk" else "id" for c in _ROW_FIELDS)
    with connection.cursor() as cur:
        cur.execute(f"SELECT {cols} FROM billing_charge WHERE {where}", params)  # noqa: S608
        rows = cur.fetchall()
    out = {}
    for row in rows:
        charge = ChargeRow(**dict(zip(_ROW_FIELDS, row, strict=True)))
        if isinstance(charge.split, str):  # SQLite hands JSON back as text
            charge.split = json.loads(charge.split)
        out[charge.request_id] = charge
    return out


def _charge_batch(events):
    thresholds = {ev.api_key.account_id: ev.api_key.threshold_micro for ev in events}
    with transaction.atomic(durable=True):
        buckets = lock_buckets(thresholds)
        existing = _existing_charges([ev.request_id for ev in events])
        sources = load_sources(buckets, timezone.now())
        before = {owner: b.available_micro for owner, b in buckets.items()}
        first_event: dict[int, str] = {}
        entries, charges, results, pending = [], [], [], []
        for ev in events:
            owner = ev.api_key.account_id
            prior = existing.get(ev.request_id)
            if prior is not None:
                if prior.account_id != owner:
                    refused = ChargeRow(request_id=ev.request_id, account_id=owner)
                    refused.error = (
                        "request_id_conflict",
                        "This request id was already used for another account.",
                    )
                    results.append(refused)
                    continue
                copy = prior.replay()
                if prior.pk is None:  # charged earlier in this batch: ids known after the write
                    pending.append((copy, prior))
                results.append(copy)
                continue
            refusal = consumption_refusal(ev.api_key.state, buckets[owner].standing)
            if refusal:
                refused = ChargeRow(request_id=ev.request_id, account_id=owner)
                refused.error = (refusal, REFUSAL_MESSAGES[refusal])
                results.append(refused)
                continue
            legs, split, parts = plan_deduction(ev.micro, sources[owner], buckets[owner])
            first_event.setdefault(owner, ev.request_id)
            entries.append(Entry(TxnKind.USAGE, owner, legs, None, ev.model[:200]))
            charge = ChargeRow(
                request_id=ev.request_id,
                account_id=owner,
                api_key_id=ev.api_key.pk,
                model=ev.model,
                amount_micro=ev.micro,
                trial_micro=parts["trial"],
                discount_micro=parts["discount"],
                cash_micro=parts["cash"],
                arrears_micro=parts["arrears"],
                split=split,
            )
            charges.append(charge)
            existing[ev.request_id] = charge  # a later event with this id replays it
            results.append(charge)
        write_rows(entries, charges=charges)
        for copy, prior in pending:
            copy.pk, copy.transaction_id, copy.created_at = (
                prior.pk,
                prior.transaction_id,
                prior.created_at,
            )
        for owner, key in first_event.items():
            after = buckets[owner].available_micro
            notify_crossings(owner, thresholds[owner], before[owner], after, key)
    return results
