"""Demo ledger activity for the demo user: a low-balance threshold, some usage and a
bonus grant that expires a few minutes after loading.

Money enters through the top-ups demo (a paid top-up, its promotion bonus) and the
trial granted on verification, so this runs as `seed_activity`, after every app's
`seed`. The expiring grant is a discount (promotional) grant, not a trial: trial
funds go to an identity once (R-TOP-5) and the demo user already has theirs. Watch
it go in admin (Operations › Job runs: expire_grants, then grant_expired_notices;
the demo user's notices page shows the notice).
"""

import datetime
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

from .models import UsageEvent

DEMO_EXPIRY_MINUTES = 3


def seed_activity(context):
    from accounts.services import set_low_balance_threshold

    from .services.ledger import grant_funds
    from .services.settlement import charge_usage

    user = context.get("users", {}).get("user")
    if user is None:
        return
    account = user.balance_account
    set_low_balance_threshold(account, Money("30.00", "CNY"))
    if not UsageEvent.objects.filter(account=account).exists():
        for i, price in enumerate(["0.012345", "1.500000", "0.000420", "12.345678", "3.3"]):
            # seed_demo runs every app's demo in one transaction, hence not durable
            charge_usage(
                account,
                Money(Decimal(price), "CNY"),
                request_id=f"demo-call-{i}",
                model="demo-model",
                durable=False,
            )
    context["notes"].append("Ledger: the demo user has lots, grants and usage at /billing/.")

    expires_at = timezone.now() + datetime.timedelta(minutes=DEMO_EXPIRY_MINUTES)
    grant = grant_funds(
        account,
        Money(Decimal("20.00"), "CNY"),
        kind="discount",
        expires_at=expires_at,
        idempotency_key="demo-bonus-expiring",  # once: reloading the demo adds nothing
        memo="Demo: expires a few minutes after the demo data was loaded",
    )
    context["notes"].append(
        f"Demo bonus grant #{grant.pk} (¥20.00) for {user.email} expires at "
        f"{timezone.localtime(grant.expires_at):%H:%M}; the expire_grants job (every minute) "
        "takes it out of the balance — see Admin › Job runs and the user's Notices page."
    )
