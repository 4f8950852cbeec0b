"""Read paths for balances, lots, grants and charges (no N+1: one query each)."""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .micro import from_micro
from .models import Charge, Grant, LedgerAccount, LedgerTransaction, Lot, Posting


def bucket_micro(account) -> dict[str, int]:
    return dict(
        LedgerAccount.objects.filter(owner_id=account.pk).values_list("kind", "balance_micro")
    )


def balance_summary(account, *, buckets=None) -> dict:
    """Money per bucket from the cached balances (one query).

    available = cash + trial + discount − arrears, never below zero. Expired
    grants not yet swept by the expiry job still count until they are.
    """
    rows = dict(buckets.values()) if buckets is not None else bucket_micro(account)
    cash, trial, discount = rows.get("cash", 0), rows.get("trial", 0), rows.get("discount", 0)
    arrears = -rows.get("arrears", 0)
    return {
        "cash": from_micro(cash),
        "trial": from_micro(trial),
        "discount": from_micro(discount),
        "hold": from_micro(rows.get("hold", 0)),
        "arrears": from_micro(arrears),
        # owed to a rights holder after a dispute's deadline refund fell short (R-DIS-3)
        "dispute_debt": from_micro(-rows.get("dispute_debt", 0)),
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


# ---------------------------------------------------------------- the user's statement

STATEMENT_PAGE = 50
SPENDABLE = ("cash", "trial", "discount")


@dataclass
class StatementLine:
    """One ledger transaction as the user sees it: what it did to each of their buckets."""

    transaction: LedgerTransaction
    buckets: dict = field(default_factory=dict)  # bucket kind → micro moved
    charge: Charge | None = None
    lot_ids: list = field(default_factory=list)
    grant_ids: list = field(default_factory=list)

    @property
    def available_micro(self) -> int:
        """The change to spendable money (cash + trial + discount)."""
        return sum(self.buckets.get(kind, 0) for kind in SPENDABLE)

    @property
    def other_buckets(self) -> list[tuple[str, int]]:
        """Moves on buckets that are not spendable (hold, arrears, dispute debt)."""
        return [(k, v) for k, v in self.buckets.items() if k not in SPENDABLE and v]


def own_buckets(account) -> dict[int, tuple[str, int]]:
    """The account's ledger accounts: id → (kind, cached balance), one query; pass it to
    `statement` and `daily_history` when a page shows both."""
    return {
        pk: (kind, micro)
        for pk, kind, micro in LedgerAccount.objects.filter(owner_id=account.pk).values_list(
            "id", "kind", "balance_micro"
        )
    }


def statement(
    account,
    *,
    kind="",
    since=None,
    until=None,
    api_key=None,
    before=None,
    limit=STATEMENT_PAGE,
    buckets=None,
):
    """A page of the account's ledger movements, newest first, and the cursor of the next
    page (None at the end). Keyset paging on the transaction id: no COUNT(*), and four
    queries whatever the page or the table size."""
    txns = LedgerTransaction.objects.filter(account_id=account.pk)
    if kind:
        txns = txns.filter(kind=kind)
    if since is not None:
        txns = txns.filter(created_at__gte=since)
    if until is not None:
        txns = txns.filter(created_at__lt=until)
    if api_key is not None:
        txns = txns.filter(charge__api_key_id=api_key.pk)
    if before:
        txns = txns.filter(id__lt=before)
    page = list(txns.order_by("-id")[: limit + 1])
    next_before = page[limit - 1].pk if len(page) > limit else None
    lines = {t.pk: StatementLine(t) for t in page[:limit]}
    if not lines:
        return [], None
    own = buckets if buckets is not None else own_buckets(account)
    rows = Posting.objects.filter(
        transaction_id__in=list(lines), ledger_account_id__in=list(own)
    ).values_list("transaction_id", "bucket", "amount_micro", "lot_id", "grant_id")
    for txn_id, bucket, micro, lot_id, grant_id in rows:
        line = lines[txn_id]
        line.buckets[bucket] = line.buckets.get(bucket, 0) + micro
        if lot_id and lot_id not in line.lot_ids:
            line.lot_ids.append(lot_id)
        if grant_id and grant_id not in line.grant_ids:
            line.grant_ids.append(grant_id)
    for charge in Charge.objects.filter(transaction_id__in=list(lines)).select_related("api_key"):
        lines[charge.transaction_id].charge = charge
    return list(lines.values()), next_before


def daily_history(account, days: int, today, *, buckets=None):
    """(day, spendable balance at the end of the day, consumption that day) for the last
    `days` local days up to `today`: two GROUP BY queries, then walked back from the
    cached balance (R-LED-4)."""
    tz = timezone.get_current_timezone()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min), tz)
    own = buckets if buckets is not None else own_buckets(account)
    spendable = {pk: micro for pk, (kind, micro) in own.items() if kind in SPENDABLE}
    net = dict(
        Posting.objects.filter(
            ledger_account_id__in=list(spendable), transaction__created_at__gte=start
        )
        .annotate(day=TruncDate("transaction__created_at", tzinfo=tz))
        .values_list("day")
        .annotate(total=Sum("amount_micro"))
        .values_list("day", "total")
    )
    used = dict(
        Charge.objects.filter(account_id=account.pk, created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day")
        .annotate(total=Sum("amount_micro"))
        .values_list("day", "total")
    )
    balance = sum(spendable.values())
    out = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        out.append((day, balance, used.get(day, 0)))
        balance -= net.get(day, 0)
    return list(reversed(out))
