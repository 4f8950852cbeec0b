from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DisputesConfig(AppConfig):
    """Third-party top-up disputes: the 30-day evidence lock, the deadline refund to the
    rights holder and the debt that follows (SPEC §7)."""

    name = "disputes"
    verbose_name = _("Third-party disputes")

    def ready(self):
        # An open dispute holds the account and the keys it locked (R-DIS-1, R-DIS-5):
        # accounts asks these when staff unlock, unfreeze or reinstate.
        from accounts import models as accounts_models

        from . import metrics  # noqa: F401 - disputes waiting, read at scrape time
        from .services._common import account_hold, key_hold

        if account_hold not in accounts_models.ACCOUNT_HOLDS:
            accounts_models.ACCOUNT_HOLDS.append(account_hold)
        if key_hold not in accounts_models.KEY_HOLDS:
            accounts_models.KEY_HOLDS.append(key_hold)

        # issue 24: debt a top-up collected is passed on when the top-up commits
        from billing.services.dispute_funds import debt_paid

        from .services.deadline import pass_on_debt_paid

        debt_paid.connect(pass_on_debt_paid, dispatch_uid="disputes.pass_on_debt_paid")
