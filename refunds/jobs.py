"""Scheduled jobs of refunds (registered with the ops job framework)."""

from django.utils.translation import gettext_lazy as _

from ops.jobs import job


@job(
    "settle_refund_payouts",
    schedule=300,
    batch_size=100,
    description=_(
        "Alipay refunds whose outcome is unknown are settled by querying Alipay "
        "(paid only once Alipay confirms the money moved, R-REF-6)."
    ),
)
def settle_refund_payouts(now, batch_size):
    """R-REF-6: settle unknown Alipay refund outcomes by query (SKIP LOCKED, idempotent)."""
    from .services.payouts import settle_refund_payouts as settle

    return settle(now, batch_size)
