"""The 360° page CS open for one user: identity (masked), standing, balance by bucket and
the latest of everything the user did, each row linked to its admin page (issue 15).

It reads every app, each through its selectors; one query per section."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _

from accounts import selectors as accounts
from billing import selectors as billing
from disputes import selectors as disputes
from invoices import selectors as invoices
from notices import selectors as notices
from refunds import selectors as refunds
from topups import selectors as topups

RECENT = 10
VIEW_PERMISSION = "accounts.view_balanceaccount"


def _admin_url(obj):
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def customer_context(user):
    account = user.balance_account
    sections = {
        "topups": topups.topups_for(user)[:RECENT],
        "lots": billing.lots_for(account)[:RECENT],
        "grants": billing.grants_for(account)[:RECENT],
        "charges": billing.recent_events(account, RECENT),
        "refunds": refunds.requests_for(user)[:RECENT],
        "disputes": disputes.recent_disputes(account, RECENT),
        "invoices": invoices.recent_requests(account, RECENT),
        "notices": notices.notices_for(user)[:RECENT],
    }
    rows = {name: [(obj, _admin_url(obj)) for obj in found] for name, found in sections.items()}
    # each event's state: pending, settled, credited back (one query for the credits)
    credited = billing.credited([obj.pk for obj, _url in rows["charges"]])
    for obj, _url in rows["charges"]:
        obj.credit_id = credited.get(obj.pk)
    return {
        "customer": user,
        "account": account,
        "account_url": _admin_url(account),
        "verification": accounts.latest_verification(user),
        "summary": billing.balance_summary(account),
        "keys": list(accounts.api_keys_of(user)),
        "rows": rows,
    }


def customer_view(request, pk):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    user = get_object_or_404(accounts.customers(), pk=pk)
    context = {
        **admin.site.each_context(request),
        **customer_context(user),
        "title": _("Customer %(email)s") % {"email": user.email},
    }
    return TemplateResponse(request, "admin/console/customer.html", context)


def customer_urls():
    """Mounted under /admin/ so the page has the admin's login, chrome and CSRF."""
    return [
        path(
            "customer/<int:pk>/",
            admin.site.admin_view(customer_view),
            name="customer",
        )
    ]
