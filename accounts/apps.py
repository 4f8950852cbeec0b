from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and identity")

    def ready(self):
        # issue 24: the verification link is minted when the email is sent, never stored
        from notices.services import register_body_provider

        from .services.registration import email_verification_body

        register_body_provider("email_verification", email_verification_body)
