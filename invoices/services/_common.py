"""Small helpers the invoice services share."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.standing import Action, may
from notices.services import send_notice


def refuse_standing(standing):
    """R-ACC-8: an invoice is asked for only when the standing allows it (the one table,
    accounts.standing: an active account)."""
    if not may(standing, Action.REQUEST_INVOICE):
        raise ValidationError(
            _(
                "Your account cannot ask for invoices in its present standing. Customer "
                "service can tell you more."
            ),
            code="standing",
        )


def page_url(invoice_request) -> str:
    base = (getattr(settings, "PORTAL_BASE_URL", "") or "").rstrip("/")
    return base + reverse("invoices:detail", args=[invoice_request.pk])


def tell(invoice_request, kind, **context):
    """The user's notice of one event of this request (once: dedupe key per event)."""
    return send_notice(
        user=invoice_request.account.user,
        kind=kind,
        context={
            "request": invoice_request.pk,
            "amount": f"{invoice_request.amount.amount:.2f}",
            "title": invoice_request.title,
            "url": page_url(invoice_request),
            **context,
        },
        dedupe_key=f"{kind}:{invoice_request.pk}",
    )
