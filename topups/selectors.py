"""Read paths for top-ups, promotions and trial awards (no N+1)."""

from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404

from .models import Promotion, TopUp


def topups_for(user):
    return (
        TopUp.objects.filter(account__user=user)
        .select_related("account")
        .order_by("-created_at", "-id")
    )


def topup_for_user(user, pk):
    """The user's own top-up or 404: another user's id reveals nothing."""
    return get_object_or_404(topups_for(user), pk=pk)


def promotions_with_counts():
    return Promotion.objects.annotate(
        redemption_count=Count("redemptions", distinct=True),
        voided_count=Count(
            "redemptions", filter=Q(redemptions__voided_at__isnull=False), distinct=True
        ),
        granted_total=Sum("redemptions__amount"),
    )


def balance_summary(account):
    from billing.selectors import balance_summary as summary

    return summary(account)


def grants_for(account):
    """Trial and discount grants with their expiry, newest first (R-TOP-5)."""
    from billing.selectors import grants_for as ledger_grants

    return ledger_grants(account)
