"""Scheduled notice work: delivery with retry, and the grant expiry reminders/notices.

The grant jobs read billing.Grant lazily (the ledger is its own app): until it
is installed they find nothing to do.
"""

import datetime

from django.apps import apps
from django.db import connection, transaction
from django.db.models import CharField, Exists, OuterRef, Sum, Value
from django.db.models.functions import Cast, Concat

from ops.jobs import job

from . import services
from .models import Notice

REMINDER_DAYS = 3
EXPIRED_LOOKBACK_DAYS = 7  # bounds the scan: older expiries were notified long ago


@job(
    "deliver_notices",
    schedule=60,
    batch_size=200,
    max_batches=50,
    description="Send pending notices by email/SMS; failures retry with exponential back-off.",
)
def deliver_notices(now, batch_size):
    """R-NOT-1: every notice is sent by Celery; its send date is its delivery date."""
    return services.deliver_due_notices(now, batch_size)


def _grant_model():
    try:
        return apps.get_model("billing", "Grant")
    except LookupError:
        return None


def _not_yet_notified(prefix):
    key = Concat(Value(prefix), Cast(OuterRef("pk"), CharField()), output_field=CharField())
    return ~Exists(Notice.objects.filter(dedupe_key=key))


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
        "remaining": getattr(grant, "remaining", None),
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
    Grant = _grant_model()
    if Grant is None:
        return 0
    with transaction.atomic():
        grants = list(
            _locked(
                Grant.objects.filter(
                    state="active",
                    remaining_micro__gt=0,
                    expires_at__gt=now,
                    expires_at__lte=now + datetime.timedelta(days=REMINDER_DAYS),
                )
                .filter(_not_yet_notified("trial_expiring:"))
                .select_related("account__user")
                .order_by("expires_at", "id")
            )[:batch_size]
        )
        for grant in grants:
            services.send_notice(
                grant.account.user,
                "trial_expiring",
                _grant_context(grant),
                dedupe_key=f"trial_expiring:{grant.pk}",
            )
    return len(grants)


def _expired_amounts(grant_ids):
    """What each grant's expiry took out of the balance (the ledger's expiry postings)."""
    try:
        Posting = apps.get_model("billing", "Posting")
        from billing.micro import from_micro

        with transaction.atomic():  # a savepoint: a query error must not spoil the batch
            rows = list(
                Posting.objects.filter(
                    grant_id__in=grant_ids, transaction__kind="expiry", amount_micro__lt=0
                )
                .values("grant_id")
                .annotate(total=Sum("amount_micro"))
            )
        return {row["grant_id"]: from_micro(-row["total"]) for row in rows}
    except Exception:  # the ledger's posting layout is its own business; the notice still goes
        return {}


@job(
    "grant_expired_notices",
    schedule=60,
    batch_size=500,
    description="Tell users that unused trial or bonus funds have expired.",
)
def grant_expired_notices(now, batch_size):
    """R-NOT-1 / R-TOP-5: one 'trial_expired' notice per expired grant."""
    Grant = _grant_model()
    if Grant is None:
        return 0
    with transaction.atomic():
        grants = list(
            _locked(
                Grant.objects.filter(
                    state="expired",
                    expires_at__lte=now,
                    expires_at__gte=now - datetime.timedelta(days=EXPIRED_LOOKBACK_DAYS),
                )
                .filter(_not_yet_notified("trial_expired:"))
                .select_related("account__user")
                .order_by("expires_at", "id")
            )[:batch_size]
        )
        amounts = _expired_amounts([g.pk for g in grants])
        for grant in grants:
            context = _grant_context(grant)
            context["expired_amount"] = amounts.get(grant.pk)
            services.send_notice(
                grant.account.user,
                "trial_expired",
                context,
                dedupe_key=f"trial_expired:{grant.pk}",
            )
    return len(grants)
