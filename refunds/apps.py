from django.apps import AppConfig


class RefundsConfig(AppConfig):
    """Refund requests: the four-eyes desk, holds and payouts (SPEC §6)."""

    name = "refunds"
    verbose_name = "Refunds"

    def ready(self):
        # Register the payout task in every process (web queues it by name, the worker
        # runs it), so the services never import the task module back.
        from . import tasks  # noqa: F401
