from django.apps import AppConfig


class NoticesConfig(AppConfig):
    name = "notices"

    def ready(self):
        from accounts.signals import standing_changed

        from . import receivers

        standing_changed.connect(
            receivers.on_standing_changed, dispatch_uid="notices.standing_changed"
        )
