"""Scheduled jobs of top-ups (registered with the ops job framework)."""

from django.utils.translation import gettext_lazy as _

from ops.jobs import job


@job(
    "expire_unpaid_topups",
    schedule=600,
    batch_size=1000,
    description=_(
        "Top-up orders still unpaid after their payment window (TOPUP_EXPIRE_MINUTES) "
        "move to expired; a late payment for them is then refused and alerted."
    ),
)
def expire_unpaid_topups(now, batch_size):
    """R-TOP-1: created → expired by the clock, set-based with SKIP LOCKED."""
    from .services.orders import expire_unpaid_topups as expire

    return expire(now, batch_size)
