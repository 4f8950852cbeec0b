"""Demo data for the clocks: a trial grant that expires a few minutes after loading.

Watch it go in admin (Operations › Job runs: expire_grants, then
grant_expired_notices; the demo user's notices page shows the notice).
Skipped while the billing ledger is not installed.
"""

import datetime
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

from .jobs import ledger

DEMO_EXPIRY_MINUTES = 3


def seed(context):
    module = ledger()
    user = context.get("users", {}).get("user")
    if module is None or user is None:
        context["notes"].append("Ops demo: billing ledger not installed, no expiring demo grant.")
        return
    now = timezone.now()
    expires_at = now + datetime.timedelta(minutes=DEMO_EXPIRY_MINUTES)
    # One per load day: reloading the same day does not add another.
    key = f"demo-trial-expiring-{timezone.localdate(now):%Y%m%d}"
    grant = module.grant_funds(
        user.balance_account,
        Money(Decimal("20.00"), "CNY"),
        kind="trial",
        expires_at=expires_at,
        idempotency_key=key,
        memo="Demo: expires a few minutes after the demo data was loaded",
    )
    context["notes"].append(
        f"Demo trial grant #{grant.pk} (¥20.00) for {user.email} expires at "
        f"{timezone.localtime(grant.expires_at):%H:%M}; the expire_grants job (every minute) "
        "takes it out of the balance — see Admin › Job runs and the user's Notices page."
    )
