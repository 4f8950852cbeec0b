"""Crediting back one usage event (issue 14: "staff can credit back one event with a
reversing adjustment"; R-LED-2, R-LED-5, R-USE-5, R-ADM-2, R-ADM-4).

A settled event shares its ledger transaction with the other events of its chunk, so
`reverse_transaction` (the whole transaction) cannot undo it. Its `split` says exactly
which grants and lots paid it and how much ran into arrears; one `usage_credit`
transaction gives exactly that back and takes the amount out of revenue:

- each lot part back to that lot's cash (refused when the lot is closed: its money has
  left through a refund, there is no cash left to give back into);
- each grant part back to the grant while it can still be spent (active, or used up,
  and not past its expiry), else to promotion expense;
- the arrears part reduces the arrears still owed; what a top-up has paid of it since
  goes back to the cash of the lot that paid it;
- revenue −amount.

Idempotent on the event: one key per event (`usage-credit:<charge id>`), so a second
credit-back moves nothing and returns the first (R-LED-5).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from ..chart import platform_account_id
from ..micro import to_micro
from ..models import (
    AccountKind,
    Grant,
    GrantState,
    LedgerTransaction,
    Lot,
    Posting,
    TxnKind,
    UsageEvent,
)
from .engine import Entry, LedgerError, Leg, replayed, run_idempotent, write
from .settlement import lock_and_settle

PERMISSION = "billing.credit_back_usage"


def credit_key(charge_id) -> str:
    return f"usage-credit:{charge_id}"


def credit_for(charge) -> LedgerTransaction | None:
    """The transaction that credited this event back, if any (one indexed lookup)."""
    return replayed(credit_key(charge.pk))


def credits_for(charge_ids) -> dict[int, int]:
    """{charge id: credit transaction id} for many events in one query (lists, pages)."""
    keys = {credit_key(pk): pk for pk in charge_ids}
    if not keys:
        return {}
    rows = LedgerTransaction.objects.filter(idempotency_key__in=list(keys)).values_list(
        "idempotency_key", "pk"
    )
    return {keys[key]: pk for key, pk in rows}


def _grant_spendable(grant: Grant, now) -> bool:
    return grant.state in (GrantState.ACTIVE, GrantState.USED_UP) and (
        grant.expires_at is None or grant.expires_at > now
    )


def _arrears_payer(arrears_bucket_id):
    """The newest open lot whose top-up paid arrears of this account: the money it gave
    to arrears is what goes back when the arrears an event ran into was paid since."""
    lot_id = (
        Posting.objects.filter(
            ledger_account_id=arrears_bucket_id, amount_micro__gt=0, lot__isnull=False
        )
        .order_by("-id")
        .values_list("lot_id", flat=True)
        .first()
    )
    if lot_id is None:
        return None
    return Lot.objects.filter(pk=lot_id, closed_at__isnull=True).first()


def _legs(charge: UsageEvent, buckets, now) -> list[Leg]:
    parts = [(item, to_micro(Decimal(item["amount"]))) for item in charge.split]
    if sum(micro for _, micro in parts) != charge.amount_micro:
        raise LedgerError(
            "This event's split does not add up to its amount; it cannot be credited back.",
            code="split_mismatch",
        )
    lots = Lot.objects.in_bulk([item["lot"] for item, _ in parts if item.get("lot")])
    grants = Grant.objects.in_bulk([item["grant"] for item, _ in parts if item.get("grant")])
    expense = platform_account_id(AccountKind.PROMOTION_EXPENSE)
    legs = []
    for item, micro in parts:
        bucket = item["bucket"]
        if bucket == AccountKind.CASH:
            lot = lots[item["lot"]]
            if lot.closed_at is not None:
                raise LedgerError(
                    f"Lot #{lot.pk} that paid this event is closed (refunded); its cash "
                    "cannot be given back.",
                    code="lot_closed",
                )
            legs.append(Leg(buckets["cash"].pk, "cash", micro, lot_id=lot.pk))
        elif bucket in (AccountKind.TRIAL, AccountKind.DISCOUNT):
            grant = grants[item["grant"]]
            if _grant_spendable(grant, now):
                legs.append(Leg(buckets[bucket].pk, bucket, micro, grant_id=grant.pk))
            else:
                # An ended grant (expired, voided, or past its expiry): free money the user
                # can no longer spend must not come back as available balance, and a used-up
                # grant past its expiry is never swept again. Promotion expense takes it,
                # as if the grant had ended with it.
                legs.append(Leg(expense, "promotion_expense", micro))
        elif bucket == AccountKind.ARREARS:
            owed = min(micro, buckets.arrears_micro)
            if owed:
                legs.append(Leg(buckets["arrears"].pk, "arrears", owed))
            if micro - owed:
                payer = _arrears_payer(buckets["arrears"].pk)
                if payer is None:
                    raise LedgerError(
                        "The arrears this event ran into were paid by a lot that is now "
                        "closed; it cannot be credited back here.",
                        code="lot_closed",
                    )
                legs.append(Leg(buckets["cash"].pk, "cash", micro - owed, lot_id=payer.pk))
        else:  # pragma: no cover - settlement writes no other bucket
            raise LedgerError(f"Unknown bucket {bucket!r} in the split.", code="split_mismatch")
    legs.append(Leg(platform_account_id(AccountKind.REVENUE), "revenue", -charge.amount_micro))
    return legs


def credit_back_usage(charge: UsageEvent, *, actor, reason: str) -> LedgerTransaction:
    """Give one settled event's money back where it came from, in one ledger transaction
    (kind `usage_credit`), with an audit record (who, when, why). A second call for the
    same event moves nothing and returns the first transaction (`.replayed` is True).

    Refused: without `billing.credit_back_usage`, on an event of the actor's own account
    (R-ADM-4), without a reason, on a pending event (settle it first), when a lot that
    paid it is closed."""
    from core.workflow import record_audit

    if actor is None or not actor.has_perm(PERMISSION):
        raise PermissionDenied("You may not credit back usage.")
    if not (reason or "").strip():
        raise LedgerError("A reason is required to credit back an event.", code="reason_required")
    owner = (
        UsageEvent.objects.filter(pk=charge.pk).values_list("account__user_id", flat=True).first()
    )
    if owner is None:
        raise LedgerError("No such usage event.", code="not_found")
    if owner == actor.pk:
        raise LedgerError(
            "You cannot credit back usage of your own account; another staff member must do it.",
            code="own_case",
        )
    key = credit_key(charge.pk)
    first = replayed(key)
    if first is not None:
        first.replayed = True
        return first
    if not UsageEvent.objects.filter(pk=charge.pk, transaction__isnull=False).exists():
        raise LedgerError(
            "This event is not settled yet; settle pending usage first, then credit it back.",
            code="pending",
        )

    def run():
        with transaction.atomic():
            # the lock order; the account's pending usage is settled first (exact balances)
            buckets = lock_and_settle([charge.account_id])[charge.account_id]
            fresh = UsageEvent.objects.get(pk=charge.pk)
            now = timezone.now()
            (txn,) = write(
                [
                    Entry(
                        TxnKind.USAGE_CREDIT,
                        fresh.account_id,
                        _legs(fresh, buckets, now),
                        idempotency_key=key,
                        # the user reads the memo on their statement; the reason stays
                        # with staff (the audit record)
                        memo=f"credit back {fresh.request_id}"[:200],
                        actor_id=actor.pk,
                    )
                ]
            )
            record_audit(
                fresh,
                action="credit_back",
                actor=actor,
                reason=reason,
                transaction=txn.pk,
                amount=str(fresh.amount.amount),
            )
            txn.replayed = False
            return txn

    def lookup():
        found = replayed(key)
        if found is not None:
            found.replayed = True
        return found

    return run_idempotent(lookup, run)
