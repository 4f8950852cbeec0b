"""Demo ledger data for the demo user: two lots, a trial grant, a discount, usage."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

from .models import Charge


def seed(context):
    from .services.ledger import charge_usage, credit_lot, grant_funds
    from .services.usage import set_low_balance_threshold

    user = context.get("users", {}).get("user")
    if user is None:
        return
    account = user.balance_account
    now = timezone.now()
    lot = credit_lot(
        account, Money("100.00", "CNY"), channel="alipay", idempotency_key="demo-lot-1"
    )
    credit_lot(account, Money("50.00", "CNY"), channel="bank", idempotency_key="demo-lot-2")
    grant_funds(
        account,
        Money("20.00", "CNY"),
        kind="trial",
        expires_at=now + timedelta(days=30),
        idempotency_key="demo-trial-1",
    )
    grant_funds(
        account,
        Money("5.00", "CNY"),
        kind="discount",
        expires_at=now + timedelta(days=90),
        idempotency_key="demo-discount-1",
        source_lot=lot,
    )
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
