"""Notices about grants (R-NOT-1, R-TOP-5): 3 days before unused free funds expire,
and once they have expired. One notice per grant, whatever the number of runs."""

import datetime

from django.db import transaction
from django.db.models import OuterRef, Sum

from notices.selectors import not_yet_notified
from notices.services import send_notice

from ..micro import from_micro
from ..models import Grant, GrantState, Posting, TxnKind

REMINDER_DAYS = 3
EXPIRED_LOOKBACK_DAYS = 7  # bounds the scan: older expiries were notified long ago


def _context(grant):
    return {
        "grant_id": grant.pk,
        "grant_kind": grant.kind,
        "amount": grant.amount,
        "remaining": grant.remaining,
        "expires_at": grant.expires_at,
    }


def _announce(grants, kind, limit, extra=None):
    """Notice `kind` for up to `limit` of these grants not yet told, in one transaction.

    Rows another worker (or the expiry sweep) holds are left for the next batch.
    """
    with transaction.atomic():
        due = grants.filter(not_yet_notified(f"{kind}:", OuterRef("pk")))
        due = due.select_for_update(skip_locked=True, of=("self",))
        batch = list(due.select_related("account__user").order_by("expires_at", "id")[:limit])
        more = extra(batch) if extra else {}
        for grant in batch:
            send_notice(
                user=grant.account.user,
                kind=kind,
                context=_context(grant) | more.get(grant.pk, {}),
                dedupe_key=f"{kind}:{grant.pk}",
            )
    return len(batch)


def send_expiry_reminders(*, now, limit):
    """'trial_expiring' for active grants with funds left that expire within 3 days."""
    grants = Grant.objects.filter(
        state=GrantState.ACTIVE,
        remaining_micro__gt=0,
        expires_at__gt=now,
        expires_at__lte=now + datetime.timedelta(days=REMINDER_DAYS),
    )
    return _announce(grants, "trial_expiring", limit)


def _expired_amounts(grants):
    """What each grant's expiry took out of the balance (its expiry postings)."""
    rows = (
        Posting.objects.filter(
            grant_id__in=[g.pk for g in grants],
            transaction__kind=TxnKind.EXPIRY,
            amount_micro__lt=0,
        )
        .values("grant_id")
        .annotate(total=Sum("amount_micro"))
    )
    return {row["grant_id"]: {"expired_amount": from_micro(-row["total"])} for row in rows}


def send_expired_notices(*, now, limit):
    """'trial_expired' for grants the sweep expired in the last week."""
    grants = Grant.objects.filter(
        state=GrantState.EXPIRED,
        expires_at__lte=now,
        expires_at__gte=now - datetime.timedelta(days=EXPIRED_LOOKBACK_DAYS),
    )
    return _announce(grants, "trial_expired", limit, extra=_expired_amounts)
