from django.apps import AppConfig


class InvoicesConfig(AppConfig):
    """Invoices for consumed cash (SPEC §8)."""

    name = "invoices"
    verbose_name = "Invoices"
