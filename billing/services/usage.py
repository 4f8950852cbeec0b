"""Consumption: authorizing API keys and charging usage (R-USE-1 … R-USE-4).

The deduction order (R-USE-2), the arrears rule (R-USE-3) and the low-balance
crossing (R-USE-4) live here, once, and serve the single call, the batch and
prepaid purchases alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from djmoney.money import Money

from accounts.models import ApiKeyState, Standing

from ..chart import platform_account_id
from ..micro import from_micro, to_micro
from ..models import (
    AccountKind,
    Charge,
    Grant,
    GrantKind,
    GrantState,
    LedgerAccount,
    LedgerTransaction,
    Lot,
    TxnKind,
)
from .engine import Buckets, Entry, LedgerError, Leg, lock_buckets, positive_micro, write


class InsufficientBalance(LedgerError):
    """A prepaid purchase the available balance does not cover (R-USE-3)."""


# ---------------------------------------------------------------- authorization

STANDING_CODES = {
    Standing.SUSPENDED: "account_suspended",
    Standing.LOCKED: "account_locked",
    Standing.FROZEN: "account_frozen",
    Standing.TERMINATED: "account_terminated",
}
KEY_CODES = {ApiKeyState.REVOKED: "key_revoked", ApiKeyState.LOCKED: "key_locked"}


@dataclass
class Authorization:
    allowed: bool
    code: str
    available: Money


def authorize(api_key) -> Authorization:
    """May this key call a model now? Refusal codes are stable (R-USE-1)."""
    if api_key is None:
        return Authorization(False, "unknown_api_key", from_micro(0))
    account = api_key.account
    rows = dict(
        LedgerAccount.objects.filter(owner_id=account.pk).values_list("kind", "balance_micro")
    )
    spendable = rows.get("cash", 0) + rows.get("trial", 0) + rows.get("discount", 0)
    arrears = -rows.get("arrears", 0)
    available = from_micro(max(0, spendable - arrears))
    code = KEY_CODES.get(api_key.state) or STANDING_CODES.get(account.standing)
    if code is None and arrears > 0:
        code = "arrears"
    if code is None and spendable - arrears <= 0:
        code = "insufficient_balance"
    return Authorization(code is None, code or "ok", available)


def resolve_api_keys(raw_keys) -> dict:
    """Many raw keys → {raw: ApiKey with account and user}, in one query (the batch
    form of accounts.services.resolve_api_key; unknown keys are simply absent)."""
    from accounts.api_keys import hash_secret
    from accounts.models import ApiKey

    by_hash = {
        hash_secret(raw): raw for raw in raw_keys if isinstance(raw, str) and 0 < len(raw) <= 200
    }
    if not by_hash:
        return {}
    keys = ApiKey.objects.select_related("account", "account__user").filter(
        secret_hash__in=list(by_hash)
    )
    return {by_hash[k.secret_hash]: k for k in keys}


# ---------------------------------------------------------------- deduction order

_KIND_RANK = {GrantKind.TRIAL: 0, GrantKind.DISCOUNT: 1}
_FAR_FUTURE = datetime.max.replace(tzinfo=timezone.get_fixed_timezone(0))


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
    cash lots oldest first. Expired grants not yet swept are never spent."""
    out = {owner: [] for owner in buckets}
    with_grants = [o for o, b in buckets.items() if b.micro("trial") > 0 or b.micro("discount") > 0]
    with_cash = [o for o, b in buckets.items() if b.micro("cash") > 0]
    if with_grants:
        grants = Grant.objects.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            account_id__in=with_grants,
            state=GrantState.ACTIVE,
            remaining_micro__gt=0,
        ).values_list("id", "account_id", "kind", "remaining_micro", "expires_at", "created_at")
        for gid, owner, kind, remaining, _exp, _created in sorted(
            grants,
            key=lambda g: (_KIND_RANK[g[2]], g[4] or _FAR_FUTURE, g[5], g[0]),
        ):
            out[owner].append(Source(kind, remaining, grant_id=gid))
    if with_cash:
        lots = (
            Lot.objects.filter(account_id__in=with_cash, remaining_micro__gt=0)
            .order_by("created_at", "id")
            .values_list("id", "account_id", "remaining_micro")
        )
        for lid, owner, remaining in lots:
            out[owner].append(Source(AccountKind.CASH.value, remaining, lot_id=lid))
    return out


def plan_deduction(micro, sources, buckets: Buckets, *, allow_arrears=True):
    """Draw `micro` from the sources in order; the rest becomes arrears (postpaid)
    or, for a prepaid purchase, nothing moves. Returns (legs, split, parts)."""
    if not allow_arrears and (
        buckets.arrears_micro > 0 or sum(s.remaining for s in sources) < micro
    ):
        raise InsufficientBalance(
            "The available balance does not cover the full price.", code="insufficient_balance"
        )
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


# ---------------------------------------------------------------- low-balance notices


def notify_crossings(account, before: int, after: int, event_key: str):
    """R-USE-4: one notice when the available balance falls below the user's
    threshold (the crossing itself, not every call below it), and one when it
    reaches zero and service stops. Called inside the charge's transaction."""
    if after >= before:
        return
    from notices.services import notify

    threshold = account.low_balance_threshold
    if threshold is not None and threshold.amount > 0:
        limit = to_micro(threshold)
        if before >= limit > after:
            notify(
                account.user,
                "low_balance",
                subject="Your balance is running low",
                body=(
                    f"Your available balance is now {from_micro(after).amount:.2f} CNY, "
                    f"below the {threshold.amount:.2f} CNY you asked us to watch for."
                ),
                context={
                    "available": str(from_micro(after).amount),
                    "threshold": str(threshold.amount),
                },
                dedupe_key=f"low_balance:{account.pk}:{event_key}",
            )
    if before > 0 and after == 0:
        notify(
            account.user,
            "service_stopped",
            subject="API service stopped: balance used up",
            body="Your available balance is used up, so API calls are refused until you top up.",
            context={},
            dedupe_key=f"service_stopped:{account.pk}:{event_key}",
        )


# ---------------------------------------------------------------- charging


def _check_ids(request_id, model):
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 200:
        raise LedgerError("request_id must be 1–200 characters.", code="invalid_request_id")
    if not isinstance(model, str) or not model.strip() or len(model) > 100:
        raise LedgerError("model must be 1–100 characters.", code="invalid_model")


def _replay(existing: Charge, account_id) -> Charge:
    if existing.account_id != account_id:
        raise LedgerError(
            "This request id was already used for another account.", code="request_id_conflict"
        )
    existing.replayed = True
    return existing


def charge_usage(api_key_or_account, amount, *, request_id: str, model: str) -> Charge:
    """Charge one API call (postpaid): grants and lots in R-USE-2 order, the rest
    as arrears (R-USE-3). Replaying a request id returns the first Charge
    (with `.replayed = True`) and moves nothing (R-LED-5)."""
    micro = positive_micro(amount)
    _check_ids(request_id, model)
    api_key = api_key_or_account if hasattr(api_key_or_account, "secret_hash") else None
    account = api_key.account if api_key else api_key_or_account
    for _attempt in range(3):
        try:
            with transaction.atomic(durable=True):
                buckets = lock_buckets([account.pk])[account.pk]
                existing = Charge.objects.filter(request_id=request_id).first()
                if existing:
                    return _replay(existing, account.pk)
                sources = load_sources({account.pk: buckets}, timezone.now())[account.pk]
                before = buckets.available_micro
                legs, split, parts = plan_deduction(micro, sources, buckets)
                (txn,) = write(
                    [Entry(TxnKind.USAGE, account.pk, legs, f"usage:{request_id}", model[:200])]
                )
                charge = Charge.objects.create(
                    request_id=request_id,
                    account_id=account.pk,
                    api_key=api_key,
                    model=model,
                    amount_micro=micro,
                    trial_micro=parts["trial"],
                    discount_micro=parts["discount"],
                    cash_micro=parts["cash"],
                    arrears_micro=parts["arrears"],
                    split=split,
                    transaction=txn,
                )
                notify_crossings(account, before, buckets.available_micro, request_id)
                charge.replayed = False
                return charge
        except IntegrityError:
            # the same request id committed by a concurrent call for another account
            existing = Charge.objects.filter(request_id=request_id).first()
            if existing:
                return _replay(existing, account.pk)
            raise
    raise LedgerError("Could not charge; please retry.", code="retry")  # pragma: no cover


@dataclass
class UsageEvent:
    request_id: str
    api_key: object  # accounts.ApiKey with .account (and .account.user) loaded
    model: str
    micro: int


def charge_usage_batch(events: list[UsageEvent]) -> list[Charge]:
    """Charge many calls at once with set-based work: a fixed number of statements
    per batch (lock, look up replays, load grants and lots, insert transactions,
    postings and charges, move cached balances), whatever its size.

    Returns one Charge per event, in order; replays (of earlier batches or of an
    earlier event in this batch) come back with `.replayed = True`."""
    for ev in events:
        _check_ids(ev.request_id, ev.model)
        if ev.micro <= 0:
            raise LedgerError("The amount must be greater than zero.", code="non_positive_amount")
    for _attempt in range(3):
        try:
            return _charge_batch(events)
        except IntegrityError:
            continue  # a concurrent batch committed some of these request ids: they replay now
    raise LedgerError("Could not charge the batch; please retry.", code="retry")


def _charge_batch(events):
    accounts = {ev.api_key.account_id: ev.api_key.account for ev in events}
    with transaction.atomic(durable=True):
        buckets = lock_buckets(accounts)
        existing = {
            c.request_id: c
            for c in Charge.objects.filter(request_id__in=[ev.request_id for ev in events])
        }
        sources = load_sources(buckets, timezone.now())
        before = {owner: b.available_micro for owner, b in buckets.items()}
        first_crossing: dict[int, str] = {}
        entries, charges, results = [], [], []
        fresh: dict[str, Charge] = {}
        for ev in events:
            owner = ev.api_key.account_id
            prior = existing.get(ev.request_id) or fresh.get(ev.request_id)
            if prior is not None:
                if prior.account_id != owner:
                    raise LedgerError(
                        f"Request id {ev.request_id} was already used for another account.",
                        code="request_id_conflict",
                    )
                results.append(_replayed_copy(prior))
                continue
            legs, split, parts = plan_deduction(ev.micro, sources[owner], buckets[owner])
            first_crossing.setdefault(owner, ev.request_id)
            entries.append(
                Entry(TxnKind.USAGE, owner, legs, f"usage:{ev.request_id}", ev.model[:200])
            )
            charge = Charge(
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
            charge.replayed = False
            charges.append(charge)
            fresh[ev.request_id] = charge
            results.append(charge)
        txns = write(entries)
        for charge, txn in zip(charges, txns, strict=True):
            charge.transaction_id = txn.pk
        Charge.objects.bulk_create(charges)
        for owner, key in first_crossing.items():
            notify_crossings(accounts[owner], before[owner], buckets[owner].available_micro, key)
    return results


def _replayed_copy(charge: Charge) -> Charge:
    copy = Charge(**{f.attname: getattr(charge, f.attname) for f in Charge._meta.concrete_fields})
    copy.replayed = True
    return copy


# ---------------------------------------------------------------- prepaid purchases


def purchase_package(
    account, price, *, idempotency_key: str, description: str
) -> LedgerTransaction:
    """A prepaid purchase (resource package): the full price must be available,
    drawn in R-USE-2 order; otherwise InsufficientBalance and nothing moves (R-USE-3).
    Returns the ledger transaction; `.split` says where the money came from."""
    micro = positive_micro(price)
    key = f"purchase:{idempotency_key}"
    found = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if found:
        return found
    if not account.can_consume:
        raise LedgerError(
            "This account may not buy now.", code=STANDING_CODES.get(account.standing, "refused")
        )
    try:
        with transaction.atomic():
            buckets = lock_buckets([account.pk])[account.pk]
            sources = load_sources({account.pk: buckets}, timezone.now())[account.pk]
            before = buckets.available_micro
            legs, split, _parts = plan_deduction(micro, sources, buckets, allow_arrears=False)
            (txn,) = write(
                [Entry(TxnKind.PURCHASE, account.pk, legs, key, (description or "Package")[:200])]
            )
            notify_crossings(account, before, buckets.available_micro, key)
            txn.split = split
            return txn
    except IntegrityError:
        found = LedgerTransaction.objects.filter(idempotency_key=key).first()
        if found is None:
            raise
        return found
