from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing and ledger")

    def ready(self):
        from . import metrics  # noqa: F401 - registers the metering gauges
        from .chart import on_post_migrate

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="billing_chart")
