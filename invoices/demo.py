"""Demo invoice: the demo user used up their free money and 40.00 CNY of paid cash and asked for a
personal invoice of 25.00, so finance can issue it in the admin (Invoices › Invoice
requests › Issue) with the sample files in invoices/samples/. Runs after every app's
`seed`, when the demo user has a paid top-up."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from djmoney.money import Money


def seed_activity(context):
    from billing.models import UsageEvent
    from billing.selectors import balance_summary
    from billing.services.settlement import charge_usage

    from .models import InvoiceRequest
    from .services.filing import submit_invoice

    user = context.get("users", {}).get("user")
    if user is None or InvoiceRequest.objects.filter(account__user=user).exists():
        return
    account = user.balance_account
    if not UsageEvent.objects.filter(request_id="demo-invoice-usage").exists():
        # free money is spent first (R-USE-2): use it up, then 40.00 of cash;
        # seed_demo runs every app's demo in one transaction, hence not durable
        free = balance_summary(account)
        price = free["trial"].amount + free["discount"].amount + Decimal("40.00")
        charge_usage(
            account,
            Money(price, "CNY"),
            request_id="demo-invoice-usage",
            model="demo-model",
            durable=False,
        )
    try:
        invoice_request = submit_invoice(user, amount="25.00", title_type="personal")
    except ValidationError as exc:
        context["notes"].append(f"Invoices: no demo invoice ({'; '.join(exc.messages)})")
        return
    context["notes"].append(
        f"Invoices: request #{invoice_request.pk} (25.00 CNY, personal, of {user.email}) awaits "
        "finance@demo.local in admin → Invoice requests → Issue (sample files in "
        "invoices/samples/; with the XML the buyer and total must match)."
    )
