"""Read paths of invoices: what may be invoiced (R-INV-1), by month, a user's requests,
the figure refunds needs (R-REF-2), finance's monthly report.

    cash consumed = − Σ cash-bucket postings of usage and prepaid purchases,
                    net of their reversals              (settled usage only)
                    + arrears paid off by paid money (usage beyond the balance that a
                      later top-up or a refund's hold settled)
    invoiced      = Σ amounts of requests submitted or issued
                    (reserved on submission; rejection and red-letter reversal release)
    invoiceable   = cash consumed − invoiced, floored at zero, down to whole fen

Trial and discount money are grants, never the cash bucket, so they are never in it.
Every figure is summed from the ledger's postings (one GROUP BY each), never cached.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, TruncMonth
from django.utils import timezone

from billing.micro import floor_fen, from_micro
from billing.models import AccountKind, Posting, TxnKind

from .models import HOLDING_STATES, InvoiceFile, InvoiceRequest, InvoiceState

CONSUMPTION = (TxnKind.USAGE, TxnKind.PURCHASE)


_CONSUMING = Q(transaction__kind__in=CONSUMPTION) | Q(
    transaction__kind=TxnKind.REVERSAL, transaction__reverses__kind__in=CONSUMPTION
)


def _consumption(account_id=None):
    """The postings that make up consumed cash, summed with SIGNED (consumed = −Σ):

    - cash-bucket postings of usage and purchases and of their reversals (debits < 0);
    - arrears-bucket postings of every other movement: usage beyond the balance ran up
      arrears, and a top-up (or a refund's hold) that settles them pays for that usage
      with paid money (credits > 0, so SIGNED negates them); a reversed top-up undoes it.
    """
    rows = Posting.objects.filter(
        Q(bucket=AccountKind.CASH) & _CONSUMING | Q(bucket=AccountKind.ARREARS) & ~_CONSUMING
    )
    if account_id is not None:
        rows = rows.filter(transaction__account_id=account_id)
    return rows


# cash postings as they are, arrears settlements negated: consumed cash = −Σ SIGNED
SIGNED = Case(
    When(bucket=AccountKind.CASH, then=F("amount_micro")),
    default=-F("amount_micro"),
    output_field=IntegerField(),
)


def invoiced_micro(account_id) -> int:
    total = InvoiceRequest.objects.filter(
        account_id=account_id, state__in=HOLDING_STATES
    ).aggregate(total=Sum("amount_micro"))["total"]
    return total or 0


def whole_fen(micro: int) -> int:
    return floor_fen(max(0, micro))


@dataclass
class Month:
    month: datetime.date
    consumed_micro: int
    invoiced_micro: int = 0  # the part of it that requests cover (oldest consumption first)

    @property
    def consumed(self):
        return from_micro(self.consumed_micro)

    @property
    def invoiced(self):
        return from_micro(self.invoiced_micro)

    @property
    def open(self):
        return from_micro(max(0, self.consumed_micro - self.invoiced_micro))


@dataclass
class Invoiceable:
    consumed_micro: int = 0
    invoiced_micro: int = 0
    months: list[Month] = field(default_factory=list)

    @property
    def invoiceable_micro(self) -> int:
        return whole_fen(self.consumed_micro - self.invoiced_micro)

    @property
    def invoiced_unconsumed_micro(self) -> int:
        return max(0, self.invoiced_micro - self.consumed_micro)

    @property
    def consumed(self):
        return from_micro(self.consumed_micro)

    @property
    def invoiced(self):
        return from_micro(self.invoiced_micro)

    @property
    def invoiceable(self):
        return from_micro(self.invoiceable_micro)


def consumption_by_month(account_id) -> list[Month]:
    """Cash consumed per calendar month (the portal's time zone), oldest first; a
    reversal counts in the month it was made. One query."""
    rows = (
        _consumption(account_id)
        .annotate(month=TruncMonth("transaction__created_at"))
        .values("month")
        .annotate(total=Sum(SIGNED))
        .order_by("month")
        .values_list("month", "total")
    )
    months = []
    for month, total in rows:
        if isinstance(month, datetime.datetime):
            month = timezone.localtime(month).date() if timezone.is_aware(month) else month.date()
        months.append(Month(month=month, consumed_micro=-(total or 0)))
    return months


def _allocate(months: list[Month], invoiced: int) -> None:
    """Spread `invoiced` over the months, oldest consumption first."""
    left = invoiced
    for item in months:
        take = max(0, min(item.consumed_micro, left))
        item.invoiced_micro = take
        left -= take


def invoiceable_for(account) -> Invoiceable:
    """R-INV-1 for one account, with the consumption by month: two queries."""
    months = consumption_by_month(account.pk)
    result = Invoiceable(
        consumed_micro=sum(m.consumed_micro for m in months),
        invoiced_micro=invoiced_micro(account.pk),
        months=months,
    )
    _allocate(months, result.invoiced_micro)
    return result


def covered_months(account_id, amount_micro, before_micro) -> tuple:
    """(first month, last month) the consumption a new request of `amount_micro` covers,
    when `before_micro` is already invoiced (oldest consumption first)."""
    months = consumption_by_month(account_id)
    start = end = None
    done = 0
    for item in months:
        lo, hi = done, done + item.consumed_micro
        done = hi
        if hi <= before_micro or item.consumed_micro <= 0:
            continue
        if lo >= before_micro + amount_micro:
            break
        start = start or item.month
        end = item.month
    return start, end


def invoiced_unconsumed_expression(account_id):
    """SQL for max(0, invoiced − cash consumed) of one account (R-REF-2): money invoiced
    and not (or no longer) consumed, which is not refundable. One scalar expression, so
    the refund preview can read it in its own query."""
    consumed = (
        _consumption()
        .filter(transaction__account_id=OuterRef("account_id"))
        .values("transaction__account_id")
        .annotate(total=Sum(SIGNED))
        .values("total")
    )
    invoiced = (
        InvoiceRequest.objects.filter(account_id=account_id, state__in=HOLDING_STATES)
        .values("account_id")
        .annotate(total=Sum("amount_micro"))
        .annotate(
            excess=F("total") + Coalesce(Subquery(consumed, output_field=IntegerField()), Value(0))
        )
        .values("excess")
    )
    return Greatest(Coalesce(Subquery(invoiced, output_field=IntegerField()), Value(0)), Value(0))


def invoiced_unconsumed_micro(account_id) -> int:
    from accounts.models import BalanceAccount

    value = (
        BalanceAccount.objects.filter(pk=account_id)
        .annotate(x=invoiced_unconsumed_expression(account_id))
        .values_list("x", flat=True)
        .first()
    )
    return int(value or 0)


# --- a user's own requests -------------------------------------------------------------------


def requests_for(user):
    """A user's own requests, newest first, with their files (the pages look requests up
    only here, so another user's id is simply not found)."""
    return (
        InvoiceRequest.objects.filter(account__user_id=user.pk)
        .prefetch_related("files")
        .order_by("-created_at", "-id")
    )


def request_for(user, pk) -> InvoiceRequest:
    """The user's own request or InvoiceRequest.DoesNotExist (a 404, never a 403)."""
    return requests_for(user).get(pk=pk)


def file_for(user, request_pk, file_pk) -> InvoiceFile:
    """An issued invoice file of the user's own request (issued or reversed), or
    InvoiceFile.DoesNotExist."""
    return InvoiceFile.objects.select_related("request").get(
        pk=file_pk,
        request_id=request_pk,
        request__account__user_id=user.pk,
        request__state__in=(InvoiceState.ISSUED, InvoiceState.REVERSED),
    )


# --- finance's monthly report ----------------------------------------------------------------


@dataclass
class ReportRow:
    account_id: int
    email: str
    consumed_micro: int = 0
    issued_micro: int = 0
    reversed_micro: int = 0
    consumed_to_date_micro: int = 0
    invoiced_to_date_micro: int = 0

    @property
    def invoiceable_micro(self):
        return whole_fen(self.consumed_to_date_micro - self.invoiced_to_date_micro)


def month_bounds(month: datetime.date):
    tz = timezone.get_current_timezone()
    start = datetime.datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = datetime.datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=tz)
    return start, nxt


def monthly_report(month: datetime.date) -> list[ReportRow]:
    """Per account with consumption or invoices: cash consumed in the month, invoices
    issued and reversed in it, and at the month's end what was consumed, invoiced (issued
    and not reversed by then) and so still invoiceable. Four GROUP BY queries."""
    from accounts.models import BalanceAccount

    start, end = month_bounds(month)
    rows: dict[int, ReportRow] = {}

    def row(account_id):
        return rows.setdefault(account_id, ReportRow(account_id=account_id, email=""))

    consumption = (
        _consumption()
        .filter(transaction__created_at__lt=end)
        .values("transaction__account_id")
        .annotate(
            to_date=Sum(SIGNED),
            in_month=Coalesce(Sum(SIGNED, filter=Q(transaction__created_at__gte=start)), Value(0)),
        )
        .values_list("transaction__account_id", "to_date", "in_month")
    )
    for account_id, to_date, in_month in consumption:
        item = row(account_id)
        item.consumed_to_date_micro = -to_date
        item.consumed_micro = -in_month
    issued = (
        InvoiceRequest.objects.filter(issued_at__lt=end)
        .values("account_id")
        .annotate(
            to_date=Coalesce(
                Sum(
                    "amount_micro",
                    filter=Q(closed_at__isnull=True)
                    | Q(closed_at__gte=end)
                    | ~Q(state=InvoiceState.REVERSED),
                ),
                Value(0),
            ),
            in_month=Coalesce(Sum("amount_micro", filter=Q(issued_at__gte=start)), Value(0)),
            reversed_in_month=Coalesce(
                Sum(
                    "amount_micro",
                    filter=Q(state=InvoiceState.REVERSED, closed_at__gte=start, closed_at__lt=end),
                ),
                Value(0),
            ),
        )
        .values_list("account_id", "to_date", "in_month", "reversed_in_month")
    )
    for account_id, to_date, in_month, reversed_in_month in issued:
        item = row(account_id)
        item.invoiced_to_date_micro = to_date
        item.issued_micro = in_month
        item.reversed_micro = reversed_in_month
    emails = dict(BalanceAccount.objects.filter(pk__in=list(rows)).values_list("pk", "user__email"))
    for account_id, item in rows.items():
        item.email = emails.get(account_id, "")
    return [rows[k] for k in sorted(rows)]


# ---------------------------------------------------------------- for the console's pages


def recent_requests(account, limit):
    """The account's latest invoice requests, newest first, one query (no files)."""
    return list(
        InvoiceRequest.objects.filter(account_id=account.pk).order_by("-created_at", "-id")[:limit]
    )


def invoice_queue():
    """Requests waiting to be issued: (how many, the oldest request), one query."""
    row = InvoiceRequest.objects.filter(state=InvoiceState.SUBMITTED).aggregate(
        n=Count("pk"), oldest=Min("created_at")
    )
    return row["n"], row["oldest"]


def user_ids_for_invoice(number: str) -> list[int]:
    """The user whose invoice carries this invoice number (exact), for the staff's
    customer search."""
    number = (number or "").strip()
    if not number:
        return []
    rows = InvoiceRequest.objects.filter(invoice_number=number)
    return list(rows.values_list("account__user_id", flat=True)[:1])
