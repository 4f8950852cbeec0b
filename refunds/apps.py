from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RefundsConfig(AppConfig):
    """Refund requests: the four-eyes desk, holds and payouts (SPEC §6)."""

    name = "refunds"
    verbose_name = _("Refunds")

    def ready(self):
        # Register the payout task in every process (web queues it by name, the worker
        # runs it), so the services never import the task module back.
        from . import (
            metrics,  # noqa: F401 - refunds waiting, read at scrape time
            tasks,  # noqa: F401
        )
