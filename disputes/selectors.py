"""Read paths of disputes: the user's pages and the staff queues (no N+1)."""

from datetime import timedelta

from django.db.models import Count, Min, Prefetch, Q

from .models import (
    DEBT_STATES,
    HOLDING_STATES,
    Dispute,
    DisputedTopUp,
    DisputeFile,
    FileKind,
    PayoutState,
    RightsHolderPayout,
)

# The states pages compare against, handed on so that a page of a higher app (console)
# reads this app through this module alone.
from .models import DisputeState as DisputeState


def disputes_for(user):
    """The user's disputes, soonest deadline first."""
    return list(
        Dispute.objects.filter(account__user=user)
        .prefetch_related(
            Prefetch("topups", queryset=DisputedTopUp.objects.select_related("topup"))
        )
        .order_by("-opened_at", "-id")
    )


def dispute_for(user, pk):
    """One dispute of this user (DoesNotExist for another user's id)."""
    return Dispute.objects.select_related("account").get(pk=pk, account__user=user)


def topups_of(dispute):
    return list(dispute.topups.select_related("topup", "lot").order_by("id"))


def evidence_of(dispute):
    return list(DisputeFile.objects.filter(dispute=dispute, kind=FileKind.EVIDENCE).order_by("id"))


def payouts_of(dispute):
    return list(dispute.payouts.select_related("disputed_topup__topup").order_by("id"))


# ---------------------------------------------------------------- for the console's pages


def holding_disputes(account):
    """The account's disputes that hold it (open, in debt, escalated), soonest deadline
    first, one query."""
    return list(
        Dispute.objects.filter(account_id=account.pk, state__in=HOLDING_STATES).order_by(
            "deadline_at"
        )
    )


def recent_disputes(account, limit):
    """The account's latest disputes, newest first, one query."""
    return list(Dispute.objects.filter(account_id=account.pk).order_by("-opened_at", "-id")[:limit])


def open_queue(now):
    """Open disputes awaiting evidence: how many, how many due within 3 and 7 days, the
    oldest opening ({n, three, week, oldest}), one query."""
    return Dispute.objects.filter(state=DisputeState.OPEN).aggregate(
        n=Count("pk"),
        week=Count("pk", filter=Q(deadline_at__lte=now + timedelta(days=7))),
        three=Count("pk", filter=Q(deadline_at__lte=now + timedelta(days=3))),
        oldest=Min("opened_at"),
    )


def debt_queue():
    """Debts outstanding and escalated: {n (in debt), escalated, oldest (the next due
    date)}, one query."""
    return Dispute.objects.filter(state__in=DEBT_STATES).aggregate(
        n=Count("pk", filter=Q(state=DisputeState.IN_DEBT)),
        escalated=Count("pk", filter=Q(state=DisputeState.ESCALATED)),
        oldest=Min("debt_due_at"),
    )


def payout_queue():
    """Rights-holder payouts failed or waiting for finance: (how many, the oldest), one
    query."""
    row = RightsHolderPayout.objects.filter(
        state__in=[PayoutState.FAILED, PayoutState.PENDING]
    ).aggregate(n=Count("pk"), oldest=Min("created_at"))
    return row["n"], row["oldest"]


def open_dispute_figures(now=None):
    """Disputes not closed, for the metrics (issue 26): per state how many and the oldest
    opening; how many are past their evidence deadline while still open (the deadline job
    should have refunded them) and how many debts are past due. One grouped query."""
    from django.utils import timezone

    now = now or timezone.now()
    rows = (
        Dispute.objects.filter(state__in=HOLDING_STATES)
        .order_by()
        .values("state")
        .annotate(
            n=Count("pk"),
            oldest=Min("opened_at"),
            past_deadline=Count("pk", filter=Q(state=DisputeState.OPEN, deadline_at__lt=now)),
            debt_overdue=Count("pk", filter=Q(state=DisputeState.IN_DEBT, debt_due_at__lt=now)),
        )
    )
    return {row.pop("state"): row for row in rows}
