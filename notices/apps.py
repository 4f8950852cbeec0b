from django.apps import AppConfig


class NoticesConfig(AppConfig):
    """Stores and delivers user notices; the apps that raise an event call
    notices.services.send_notice. Knows no other app's models."""

    name = "notices"
