"""Scheduled ledger jobs (§11): grant expiry, its reminders and notices, and the
nightly reconciliation."""

import datetime

from django.db import connection, transaction
from django.db.models import OuterRef, Sum

from notices.selectors import not_yet_notified
from notices.services import send_notice
from ops.jobs import job

from .micro import from_micro
from .models import Grant, GrantState, Posting, TxnKind

REMINDER_DAYS = 3
EXPIRED_LOOKBACK_DAYS = 7  # bounds the scan: older expiries were notified long ago


@job(
    "expire_grants",
    schedule=60,
    batch_size=5000,
    max_batches=400,
    description="Expire due trial and discount grants (grant → promotion expense).",
)
def expire_grants(now, batch_size):
    from .services.ledger import expire_due_grants

    return expire_due_grants(now=now, limit=batch_size)


@job(
    "reconcile_ledger",
    schedule="30 2 * * *",
    batch_size=200_000,  # id-range width of each GROUP BY pass in reconcile_all
    max_batches=1,  # one pass over the whole ledger per run
    lease_seconds=3 * 3600,
    description="Prove cached balances equal the postings; alert staff on drift.",
)
def reconcile_ledger(now, batch_size):
    from .services.reconcile import reconcile_all

    report = reconcile_all(batch_size=batch_size, alert=True)
    # One full pass per run; rows touched = findings reported to staff.
    return len(report.drifts) + (1 if report.postings_total_micro else 0)


def _locked(queryset):
    if connection.vendor == "postgresql":
        # Rows another worker (or the expiry job) holds are left for the next batch.
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def _grant_context(grant):
    return {
        "grant_id": grant.pk,
        "grant_kind": grant.kind,
        "amount": grant.amount,
        "remaining": grant.remaining,
        "expires_at": grant.expires_at,
    }


@job(
    "grant_expiry_reminders",
    schedule="*/15 * * * *",
    batch_size=500,
    description="Tell users 3 days ahead that unused trial or bonus funds will expire.",
)
def grant_expiry_reminders(now, batch_size):
    """R-NOT-1 / R-TOP-5: one 'trial_expiring' notice per grant, 3 days before expiry."""
    with transaction.atomic():
        grants = list(
            _locked(
                Grant.objects.filter(
                    state=GrantState.ACTIVE,
                    remaining_micro__gt=0,
                    expires_at__gt=now,
                    expires_at__lte=now + datetime.timedelta(days=REMINDER_DAYS),
                )
                .filter(not_yet_notified("trial_expiring:", OuterRef("pk")))
                .select_related("account__user")
                .order_by("expires_at", "id")
            )[:batch_size]
        )
        for grant in grants:
            send_notice(
                user=grant.account.user,
                kind="trial_expiring",
                context=_grant_context(grant),
                dedupe_key=f"trial_expiring:{grant.pk}",
            )
    return len(grants)


def _expired_amounts(grant_ids):
    """What each grant's expiry took out of the balance (its expiry postings)."""
    rows = (
        Posting.objects.filter(
            grant_id__in=grant_ids, transaction__kind=TxnKind.EXPIRY, amount_micro__lt=0
        )
        .values("grant_id")
        .annotate(total=Sum("amount_micro"))
    )
    return {row["grant_id"]: from_micro(-row["total"]) for row in rows}


@job(
    "grant_expired_notices",
    schedule=60,
    batch_size=500,
    description="Tell users that unused trial or bonus funds have expired.",
)
def grant_expired_notices(now, batch_size):
    """R-NOT-1 / R-TOP-5: one 'trial_expired' notice per expired grant."""
    with transaction.atomic():
        grants = list(
            _locked(
                Grant.objects.filter(
                    state=GrantState.EXPIRED,
                    expires_at__lte=now,
                    expires_at__gte=now - datetime.timedelta(days=EXPIRED_LOOKBACK_DAYS),
                )
                .filter(not_yet_notified("trial_expired:", OuterRef("pk")))
                .select_related("account__user")
                .order_by("expires_at", "id")
            )[:batch_size]
        )
        amounts = _expired_amounts([g.pk for g in grants])
        for grant in grants:
            context = _grant_context(grant)
            context["expired_amount"] = amounts.get(grant.pk)
            send_notice(
                user=grant.account.user,
                kind="trial_expired",
                context=context,
                dedupe_key=f"trial_expired:{grant.pk}",
            )
    return len(grants)
