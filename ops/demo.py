"""Demo data for the clocks: a bonus grant that expires a few minutes after loading.

A discount (promotional) grant, not a trial: trial funds go to an identity once
(R-TOP-5) and the demo user already has theirs from verification.

Watch it go in admin (Operations › Job runs: expire_grants, then
grant_expired_notices; the demo user's notices page shows the notice).
Skipped while the billing ledger is not installed.
"""

import datetime
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

DEMO_EXPIRY_MINUTES = 3


def seed(context):
    from billing.services import ledger as module

    user = context.get("users", {}).get("user")
    if user is None:
        return
    now = timezone.now()
    expires_at = now + datetime.timedelta(minutes=DEMO_EXPIRY_MINUTES)
    key = "demo-bonus-expiring"  # once: reloading the demo adds nothing
    grant = module.grant_funds(
        user.balance_account,
        Money(Decimal("20.00"), "CNY"),
        kind="discount",
        expires_at=expires_at,
        idempotency_key=key,
        memo="Demo: expires a few minutes after the demo data was loaded",
    )
    context["notes"].append(
        f"Demo bonus grant #{grant.pk} (¥20.00) for {user.email} expires at "
        f"{timezone.localtime(grant.expires_at):%H:%M}; the expire_grants job (every minute) "
        "takes it out of the balance — see Admin › Job runs and the user's Notices page."
    )
