"""Prepaid purchases (resource packages): the full price or nothing (R-USE-3)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.standing import Action, refusal_code

from ..models import LedgerTransaction, TxnKind
from .authorization import consumption_refusal
from .deduction import load_sources, plan_deduction
from .engine import Entry, LedgerError, positive_micro, write
from .settlement import lock_and_settle, notify_crossings, threshold_micro


class InsufficientBalance(LedgerError):
    """A prepaid purchase the available balance does not cover (R-USE-3)."""


def _may_not_buy(standing):
    """The refusal of a purchase: the standing table's code for consuming (R-ACC-8)."""
    return LedgerError(
        "This account may not buy now.", code=refusal_code(standing, Action.CONSUME) or "refused"
    )


def purchase_package(
    account, price, *, idempotency_key: str, description: str
) -> LedgerTransaction:
    """A prepaid purchase (resource package): the full price must be available,
    drawn in R-USE-2 order; otherwise InsufficientBalance and nothing moves (R-USE-3).
    Only an account that may consume buys (R-ACC-8): checked on the caller's account
    and again on the standing read under the account's row lock.
    Returns the ledger transaction; `.split` says where the money came from."""
    micro = positive_micro(price)
    key = f"purchase:{idempotency_key}"
    found = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if found:
        return found
    if not account.may(Action.CONSUME):
        raise _may_not_buy(account.standing)
    try:
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            if consumption_refusal(None, buckets.standing):
                raise _may_not_buy(buckets.standing)
            # resource packages pay only usage of their models, never a purchase
            sources = [
                s
                for s in load_sources({account.pk: buckets}, timezone.now())[account.pk]
                if s.models is None
            ]
            if buckets.arrears_micro > 0 or sum(s.remaining for s in sources) < micro:
                raise InsufficientBalance(
                    "The available balance does not cover the full price.",
                    code="insufficient_balance",
                )
            before = buckets.available_micro
            legs, split, _parts = plan_deduction(micro, sources, buckets)
            (txn,) = write(
                [Entry(TxnKind.PURCHASE, account.pk, legs, key, (description or "Package")[:200])]
            )
            notify_crossings(
                account.pk, threshold_micro(account), before, buckets.available_micro, key
            )
            txn.split = split
            return txn
    except IntegrityError:
        found = LedgerTransaction.objects.filter(idempotency_key=key).first()
        if found is None:
            raise
        return found
