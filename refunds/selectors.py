"""Read paths of refunds: the preview (R-REF-2), a user's requests, the staff queue.

The preview is the same for the user and for staff. Per open lot of the account:

    refundable = unconsumed cash
                 − invoiced but not consumed           (invoices.selectors, §8.4)
                 − discount used that this lot earned  (§8.2)
                 floored at zero

Trial and discount money are never in it (they are grants, not lots), nor is
consumed cash. Closed lots (refunded once, R-REF-4) and lots of a request still
open are left out. The total is the sum, and what is paid back is the total minus
the arrears settled from it first. All figures come from the ledger: one query over
lots with the discount earned and used aggregated in SQL (postings of charges and
purchases on the lot's discount grants, net of their reversals), one for the
arrears bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Exists, F, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from djmoney.money import Money

from billing.micro import floor_fen, from_micro, to_micro
from billing.models import AccountKind, GrantKind, LedgerAccount, Lot, Posting, TxnKind
from invoices.selectors import invoiced_unconsumed_expression

from .models import OPEN_STATES, RefundLine, RefundRequest

# The states pages compare against, handed on so that a page of a higher app (console)
# reads this app through this module alone.
from .models import RefundState as RefundState

# Invoiced but not consumed (§8.4): the account's invoiced cash beyond its consumed cash
# (invoices.selectors, R-INV-1), e.g. after a reversed charge; read in the lots query as
# one scalar subquery and taken from the lots' unconsumed cash, oldest lot first.

CONSUMPTION = (TxnKind.USAGE, TxnKind.PURCHASE)


@dataclass
class LotPreview:
    lot_id: int
    channel: str
    created_at: object
    paid_micro: int
    unconsumed_micro: int
    consumed_micro: int
    invoiced_unconsumed_micro: int
    discount_earned_micro: int
    discount_used_micro: int
    refundable_micro: int

    def money(self, name) -> Money:
        return from_micro(getattr(self, f"{name}_micro"))

    @property
    def paid(self):
        return self.money("paid")

    @property
    def consumed(self):
        return self.money("consumed")

    @property
    def unconsumed(self):
        return self.money("unconsumed")

    @property
    def invoiced_unconsumed(self):
        return self.money("invoiced_unconsumed")

    @property
    def discount_earned(self):
        return self.money("discount_earned")

    @property
    def discount_used(self):
        return self.money("discount_used")

    @property
    def refundable(self):
        return self.money("refundable")


@dataclass
class Preview:
    lots: list[LotPreview] = field(default_factory=list)
    total_micro: int = 0
    arrears_micro: int = 0

    @property
    def net_micro(self) -> int:
        """What would be paid back: the refundable total minus arrears settled first."""
        return max(0, self.total_micro - self.arrears_micro)

    @property
    def total(self):
        return from_micro(self.total_micro)

    @property
    def arrears(self):
        return from_micro(self.arrears_micro)

    @property
    def net(self):
        return from_micro(self.net_micro)


def refundable_of(unconsumed, invoiced_unconsumed, discount_used) -> int:
    """R-REF-2 for one lot, in micro-units, floored at zero."""
    return max(0, unconsumed - invoiced_unconsumed - discount_used)


def discount_used_by_lot(lot_ids=None, *, account_id=None) -> dict[int, int]:
    """{lot id: discount spent by charges and purchases} over the discount grants each
    lot earned, net of reversed charges: one GROUP BY over postings."""
    rows = Posting.objects.filter(
        grant__kind=GrantKind.DISCOUNT, grant__source_lot__isnull=False
    ).filter(
        Q(transaction__kind__in=CONSUMPTION)
        | Q(transaction__kind=TxnKind.REVERSAL, transaction__reverses__kind__in=CONSUMPTION)
    )
    if lot_ids is not None:
        rows = rows.filter(grant__source_lot_id__in=list(lot_ids))
    if account_id is not None:
        rows = rows.filter(grant__account_id=account_id)
    return {
        lot: -total
        for lot, total in rows.values_list("grant__source_lot_id")
        .annotate(total=Sum("amount_micro"))
        .values_list("grant__source_lot_id", "total")
    }


def _used_subquery():
    used = (
        Posting.objects.filter(grant__kind=GrantKind.DISCOUNT, grant__source_lot_id=OuterRef("pk"))
        .filter(
            Q(transaction__kind__in=CONSUMPTION)
            | Q(transaction__kind=TxnKind.REVERSAL, transaction__reverses__kind__in=CONSUMPTION)
        )
        .values("grant__source_lot_id")
        .annotate(total=Sum("amount_micro"))
        .values("total")
    )
    return Coalesce(-Subquery(used), Value(0))


def _earned_subquery():
    from billing.models import Grant

    earned = (
        Grant.objects.filter(kind=GrantKind.DISCOUNT, source_lot_id=OuterRef("pk"))
        .values("source_lot_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Subquery(earned)


def open_lots(account):
    """Lots that may be refunded now: not closed, not in a request still open."""
    in_open_request = RefundLine.objects.filter(
        lot_id=OuterRef("pk"), request__state__in=OPEN_STATES
    )
    return Lot.objects.filter(account_id=account.pk, closed_at__isnull=True).exclude(
        Exists(in_open_request)
    )


def refund_preview(account) -> Preview:
    """The preview per lot and in total (R-REF-2); two queries whatever the number of
    lots and grants."""
    rows = (
        open_lots(account)
        .annotate(
            used=_used_subquery(),
            earned=_earned_subquery(),
            unconsumed=F("remaining_micro"),
            invoiced_unconsumed=invoiced_unconsumed_expression(account.pk),
        )
        .order_by("created_at", "id")
        .values_list(
            "pk",
            "channel",
            "created_at",
            "amount",
            "remaining_micro",
            "held_micro",
            "used",
            "earned",
            "invoiced_unconsumed",
        )
    )
    preview = Preview()
    for pk, channel, created_at, amount, remaining, held, used, earned, excess in rows:
        paid = to_micro(amount)
        used = int(used or 0)
        if not preview.lots:
            invoiced_left = int(excess or 0)
        invoiced = min(remaining, invoiced_left)
        invoiced_left -= invoiced
        item = LotPreview(
            lot_id=pk,
            channel=channel,
            created_at=created_at,
            paid_micro=paid,
            unconsumed_micro=remaining,
            consumed_micro=max(0, paid - remaining - held),
            invoiced_unconsumed_micro=invoiced,
            discount_earned_micro=to_micro(earned or 0),
            discount_used_micro=used,
            refundable_micro=refundable_of(remaining, invoiced, used),
        )
        # whole fen only: a refund is paid in fen (R-LED-3); the sub-fen rest stays
        item.refundable_micro = floor_fen(item.refundable_micro)
        preview.lots.append(item)
    preview.total_micro = sum(item.refundable_micro for item in preview.lots)
    arrears = (
        LedgerAccount.objects.filter(owner_id=account.pk, kind=AccountKind.ARREARS)
        .values_list("balance_micro", flat=True)
        .first()
    )
    preview.arrears_micro = -(arrears or 0)
    return preview


def requests_for(user):
    """A user's own requests, newest first (the pages look requests up only here, so
    another user's request id is simply not found)."""
    return RefundRequest.objects.filter(account__user_id=user.pk).order_by("-created_at", "-id")


def request_for(user, pk) -> RefundRequest:
    """The user's own request or RefundRequest.DoesNotExist (a 404, never a 403)."""
    return requests_for(user).get(pk=pk)


def lines_of(refund):
    return list(refund.lines.select_related("lot").order_by("id"))


# ---------------------------------------------------------------- for the console's pages


def open_requests(account, *, limit=5):
    """The account's requests still under review, newest first, one query."""
    requests = RefundRequest.objects.filter(account_id=account.pk, state__in=OPEN_STATES)
    return list(requests.order_by("-id")[:limit])


# the states in which a request waits for staff (or for the payout), in the desk's order
QUEUE_STATES = (
    RefundState.SUBMITTED,
    RefundState.UNDER_REVIEW,
    RefundState.APPROVED,
    RefundState.PAYING,
    RefundState.PAYOUT_FAILED,
)


def refund_queues():
    """[(state, how many, the oldest request)] for each of QUEUE_STATES, one query."""
    rows = (
        RefundRequest.objects.filter(state__in=QUEUE_STATES)
        .values("state")
        .annotate(n=Count("pk"), oldest=Min("created_at"))
        .order_by()
    )
    found = {row["state"]: (row["n"], row["oldest"]) for row in rows}
    return [(state, *found.get(state.value, (0, None))) for state in QUEUE_STATES]


def user_ids_for_refund(number: str) -> list[int]:
    """The user of a refund by its number: "RF00000012" (the request), a line's
    out_request_no "RF00000012L…" or "#12", for the staff's customer search."""
    import re

    number = (number or "").strip()
    match = re.fullmatch(r"(?:RF|#)0*(\d{1,12})(?:L\d+)?", number, flags=re.IGNORECASE)
    if not match:
        return []
    rows = RefundRequest.objects.filter(pk=int(match.group(1)))
    return list(rows.values_list("account__user_id", flat=True)[:1])


WAITING_STATES = (
    RefundState.SUBMITTED,
    RefundState.UNDER_REVIEW,
    RefundState.APPROVED,
    RefundState.PAYING,
    RefundState.PAYOUT_FAILED,
)
AGE_BANDS = (("under_1d", 0, 1), ("1d_to_3d", 1, 3), ("3d_to_7d", 3, 7), ("over_7d", 7, None))


def waiting_by_age(now=None):
    """Refund requests not finished, per state: {state: {band: n, "oldest": created_at}}
    for the metrics (issue 26): one grouped query over the (state, created_at) index."""
    from datetime import timedelta

    from django.utils import timezone

    now = now or timezone.now()
    counts = {}
    for band, lo, hi in AGE_BANDS:
        q = Q(created_at__lte=now - timedelta(days=lo))
        if hi is not None:
            q &= Q(created_at__gt=now - timedelta(days=hi))
        counts[band] = Count("pk", filter=q)
    rows = (
        RefundRequest.objects.filter(state__in=WAITING_STATES)
        .order_by()
        .values("state")
        .annotate(oldest=Min("created_at"), **counts)
    )
    return {row.pop("state"): row for row in rows}
