from django.apps import AppConfig


class DisputesConfig(AppConfig):
    """Third-party top-up disputes: the 30-day evidence lock, the deadline refund to the
    rights holder and the debt that follows (SPEC §7). Built on refunds' payouts."""

    name = "disputes"
    verbose_name = "Third-party disputes"
