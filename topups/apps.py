from django.apps import AppConfig


class TopupsConfig(AppConfig):
    """Top-ups, trial funds and promotions: how money and free funds enter a balance."""

    name = "topups"
    label = "topups"
    verbose_name = "Top-ups, trials and promotions"
