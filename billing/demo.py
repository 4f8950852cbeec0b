"""Demo ledger data for the demo user: a low-balance threshold and some usage.

Money enters through the top-ups demo (a paid top-up, its promotion bonus) and
the trial granted on verification, never straight into the ledger, so the demo
shows only what the rules allow.
"""

from decimal import Decimal

from djmoney.money import Money

from .models import Charge


def seed(context):
    from .services.ledger import charge_usage
    from .services.usage import set_low_balance_threshold

    user = context.get("users", {}).get("user")
    if user is None:
        return
    account = user.balance_account
    set_low_balance_threshold(account, Money("30.00", "CNY"))
    if not Charge.objects.filter(account=account).exists():
        for i, price in enumerate(["0.012345", "1.500000", "0.000420", "12.345678", "3.3"]):
            # seed_demo runs every app's demo in one transaction, hence not durable
            charge_usage(
                account,
                Money(Decimal(price), "CNY"),
                request_id=f"demo-call-{i}",
                model="demo-model",
                durable=False,
            )
    context["notes"].append("Ledger: the demo user has lots, grants and charges at /billing/.")
