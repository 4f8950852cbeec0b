from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NoticesConfig(AppConfig):
    """Stores and delivers user notices; the apps that raise an event call
    notices.services.send_notice. Knows no other app's models."""

    name = "notices"
    verbose_name = _("Notices")
