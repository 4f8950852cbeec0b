from django.apps import AppConfig


class RefundsConfig(AppConfig):
    """Refund requests: the four-eyes desk, holds and payouts (SPEC §6)."""

    name = "refunds"
    verbose_name = "Refunds"
