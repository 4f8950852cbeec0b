from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TopupsConfig(AppConfig):
    """Top-ups, trial funds and promotions: how money and free funds enter a balance."""

    name = "topups"
    label = "topups"
    verbose_name = _("Top-ups, trials and promotions")
