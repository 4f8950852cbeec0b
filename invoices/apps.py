from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InvoicesConfig(AppConfig):
    """Invoices for consumed cash (SPEC §8)."""

    name = "invoices"
    verbose_name = _("Invoices")

    def ready(self):
        # The issued invoice travels with its email once notices take attachments (a
        # hook notices does not have yet: until then the email links to the download).
        from notices import services as notice_services

        register = getattr(notice_services, "register_attachment_provider", None)
        if register is not None:
            from .services.issuing import notice_attachments

            register("invoice_issued", notice_attachments)
