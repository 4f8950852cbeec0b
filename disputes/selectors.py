"""Read paths of disputes: the user's pages and the staff queues (no N+1)."""

from django.db.models import Prefetch

from .models import DEBT_STATES, Dispute, DisputedTopUp, DisputeFile, FileKind


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


def open_debts_for(user):
    return list(
        Dispute.objects.filter(account__user=user, state__in=DEBT_STATES).order_by("debt_due_at")
    )
