from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """Pages that span domains, on the top floor: the user's home, the staff workbench on
    the admin's home and the 360° customer page. They hold no models and no rules, and
    read every other app through its selectors (README "Layout")."""

    name = "console"
    verbose_name = _("Console")
