"""The 360° page CS open for one user: identity (masked), standing, balance by bucket and
the latest of everything the user did, each row linked to its admin page (issue 15).

It reads every app, so it lives in the project layer; one query per section."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _

from accounts.selectors import latest_verification
from billing import selectors as billing
from billing.models import Grant, Lot, UsageEvent
from disputes.models import Dispute
from invoices.models import InvoiceRequest
from notices.models import Notice
from refunds.models import RefundRequest
from topups.models import TopUp

RECENT = 10
VIEW_PERMISSION = "accounts.view_balanceaccount"


def _admin_url(obj):
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def customer_context(user):
    account = user.balance_account
    sections = {
        "topups": TopUp.objects.filter(account=account).order_by("-created_at", "-id"),
        "lots": Lot.objects.filter(account_id=account.pk).order_by("-id"),
        "grants": Grant.objects.filter(account_id=account.pk).order_by("-id"),
        "charges": UsageEvent.objects.filter(account_id=account.pk)
        .select_related("api_key")
        .order_by("-id"),
        "refunds": RefundRequest.objects.filter(account=account).order_by("-created_at", "-id"),
        "disputes": Dispute.objects.filter(account=account).order_by("-opened_at", "-id"),
        "invoices": InvoiceRequest.objects.filter(account=account).order_by("-created_at", "-id"),
        "notices": Notice.objects.filter(user=user).order_by("-created_at", "-id"),
    }
    rows = {}
    for name, queryset in sections.items():
        rows[name] = [(obj, _admin_url(obj)) for obj in queryset[:RECENT]]
    # each event's state: pending, settled, credited back (one query for the credits)
    credited = billing.credited([obj.pk for obj, _url in rows["charges"]])
    for obj, _url in rows["charges"]:
        obj.credit_id = credited.get(obj.pk)
    return {
        "customer": user,
        "account": account,
        "account_url": _admin_url(account),
        "verification": latest_verification(user),
        "summary": billing.balance_summary(account),
        "keys": list(account.api_keys.order_by("-created_at")),
        "rows": rows,
    }


def customer_view(request, pk):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    user = get_object_or_404(get_user_model().objects.select_related("balance_account"), pk=pk)
    context = {
        **admin.site.each_context(request),
        **customer_context(user),
        "title": _("Customer %(email)s") % {"email": user.email},
    }
    return TemplateResponse(request, "admin/customer.html", context)


def customer_urls():
    """Mounted under /admin/ so the page has the admin's login, chrome and CSRF."""
    return [
        path(
            "customer/<int:pk>/",
            admin.site.admin_view(customer_view),
            name="customer",
        )
    ]


def customer_url(user_id):
    return reverse("admin:customer", args=[user_id])
