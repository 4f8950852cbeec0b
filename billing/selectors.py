"""Read paths for balances, lots, grants and charges (no N+1: one query each)."""

from django.db.models import Sum

from .micro import from_micro
from .models import Charge, Grant, LedgerAccount, LedgerTransaction, Lot, Posting


def bucket_micro(account) -> dict[str, int]:
    return dict(
        LedgerAccount.objects.filter(owner_id=account.pk).values_list("kind", "balance_micro")
    )


def balance_summary(account) -> dict:
    """Money per bucket from the cached balances (one query).

    available = cash + trial + discount − arrears, never below zero. Expired
    grants not yet swept by the expiry job still count until they are.
    """
    rows = bucket_micro(account)
    cash, trial, discount = rows.get("cash", 0), rows.get("trial", 0), rows.get("discount", 0)
    arrears = -rows.get("arrears", 0)
    return {
        "cash": from_micro(cash),
        "trial": from_micro(trial),
        "discount": from_micro(discount),
        "hold": from_micro(rows.get("hold", 0)),
        "arrears": from_micro(arrears),
        "available": from_micro(max(0, cash + trial + discount - arrears)),
    }


def lots_for(account):
    return Lot.objects.filter(account_id=account.pk).order_by("-created_at", "-id")


def grants_for(account):
    return Grant.objects.filter(account_id=account.pk).order_by("-created_at", "-id")


def recent_charges(account, limit=20):
    return list(Charge.objects.filter(account_id=account.pk).order_by("-id")[:limit])


def transactions_for(account, limit=50):
    return list(LedgerTransaction.objects.filter(account_id=account.pk).order_by("-id")[:limit])


def platform_balances() -> dict[int, object]:
    """Balances of the platform accounts, summed from postings (they are not cached)."""
    rows = (
        Posting.objects.filter(ledger_account__owner__isnull=True)
        .values_list("ledger_account_id")
        .annotate(total=Sum("amount_micro"))
    )
    return {la: from_micro(total) for la, total in rows}


def charge_for(request_id: str) -> Charge | None:
    """The charge recorded for a gateway request id, or None."""
    return Charge.objects.filter(request_id=request_id).first()
