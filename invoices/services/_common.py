"""Small helpers the invoice services share."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.models import Standing
from notices.services import send_notice

# R-ACC-8: a suspended, locked (disputed), frozen or terminated account files no invoice.
NO_INVOICE_STANDINGS = (
    Standing.SUSPENDED,
    Standing.LOCKED,
    Standing.FROZEN,
    Standing.TERMINATED,
)


def refuse_standing(standing):
    if standing in NO_INVOICE_STANDINGS:
        raise ValidationError(
            _(
                "Your account cannot ask for invoices in its present standing. Customer "
                "service can tell you more."
            ),
            code="standing",
        )


def page_url(request) -> str:
    base = (getattr(settings, "PORTAL_BASE_URL", "") or "").rstrip("/")
    return base + reverse("invoices:detail", args=[request.pk])


def tell(request, kind, **context):
    """The user's notice of one event of this request (once: dedupe key per event)."""
    return send_notice(
        user=request.account.user,
        kind=kind,
        context={
            "request": request.pk,
            "amount": f"{request.amount.amount:.2f}",
            "title": request.title,
            "url": page_url(request),
            **context,
        },
        dedupe_key=f"{kind}:{request.pk}",
    )
