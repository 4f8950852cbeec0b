from django.apps import AppConfig


class TopupsConfig(AppConfig):
    """Top-ups, trial funds and promotions: how money and free funds enter a balance."""

    name = "billing.topups"
    label = "topups"
    verbose_name = "Top-ups, trials and promotions"

    def ready(self):
        from . import receivers

        receivers.connect()
