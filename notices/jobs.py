"""Scheduled notice work: delivery with retry and exponential back-off.

Reminders about other apps' objects (a grant about to expire, say) are those
apps' own jobs; they raise notices through notices.services.send_notice.
"""

from django.utils.translation import gettext_lazy as _

from ops.jobs import job

from . import services


@job(
    "deliver_notices",
    schedule=60,
    batch_size=200,
    max_batches=50,
    description=_("Send pending notices by email/SMS; failures retry with exponential back-off."),
)
def deliver_notices(now, batch_size):
    """R-NOT-1: every notice is sent by Celery; its send date is its delivery date."""
    return services.deliver_due_notices(now, batch_size)
