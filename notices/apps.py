from django.apps import AppConfig


class NoticesConfig(AppConfig):
    name = "notices"

    def ready(self):
        from importlib import import_module

        from . import receivers

        # accounts.signals.standing_changed arrives with the accounts work; connect only
        # when it exists so this app works before and after that merge.
        try:
            account_signals = import_module("accounts.signals")
        except ImportError:
            return
        signal = getattr(account_signals, "standing_changed", None)
        if signal is not None:
            signal.connect(receivers.on_standing_changed, dispatch_uid="notices.standing_changed")
