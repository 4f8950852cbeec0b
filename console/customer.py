"""The 360° page CS open for one user: identity (masked), standing, balance by bucket and
the latest of everything the user did, each row linked to its admin page (issue 15).

It reads every app, each through its selectors; one query per section."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
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
        # issue 23: the user's spend limits (R-USE-7) and resource packages (R-PKG-2)
        "spend_limits": billing.spend_limits_of(account),
        "packages": billing.holdings_of(account, limit=RECENT),
    }


def customer_actions(staff, user):
    """What this staff member may start for the customer from their page: open a
    third-party dispute (CS, R-DIS-1), file a refund for them (CS, R-REF-1)."""
    actions = []
    if staff.has_perm("disputes.open_dispute"):
        url = reverse("admin:disputes_dispute_open") + f"?customer={user.pk}"
        actions.append((_("Open a dispute"), url))
    if staff.has_perm("refunds.file_refundrequest"):
        url = reverse("admin:refunds_refundrequest_file") + f"?customer={user.pk}"
        actions.append((_("File a refund for this customer"), url))
    return actions


def customer_view(request, pk):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    user = get_object_or_404(accounts.customers(), pk=pk)
    context = {
        **admin.site.each_context(request),
        **customer_context(user),
        "customer_actions": customer_actions(request.user, user),
        "title": _("Customer %(email)s") % {"email": user.email},
    }
    return TemplateResponse(request, "admin/console/customer.html", context)


def find_customers(term):
    """Users a staff member's search term names: an email (or a part of it), a phone, an
    order, Alipay trade or remittance number, a refund or invoice number, a gateway
    request id. Every lookup is exact on an index except the part of an email, which
    reads the users table only (never the ledger's big tables)."""
    term = (term or "").strip()
    if not term:
        return []
    found = []
    for lookup in (
        topups.user_ids_for_trade,
        refunds.user_ids_for_refund,
        invoices.user_ids_for_invoice,
        billing.user_ids_for_request,
        accounts.users_matching,
    ):
        for pk in lookup(term):
            if pk not in found:
                found.append(pk)
        if found and lookup is not accounts.users_matching:
            break  # a case number names one customer: no need to try the rest
    return found


def customer_search_view(request):
    """The search box on the workbench and the customer page: one customer found opens
    their page; several are listed; none says so."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    term = request.GET.get("q", "").strip()[:200]
    ids = find_customers(term)
    if len(ids) == 1:
        return redirect("admin:customer", ids[0])
    matches = list(accounts.customers().filter(pk__in=ids).order_by("email")) if ids else []
    context = {
        **admin.site.each_context(request),
        "title": _("Find a customer"),
        "term": term,
        "matches": [(user, reverse("admin:customer", args=[user.pk])) for user in matches],
    }
    return TemplateResponse(request, "admin/console/customer_search.html", context)


def customer_urls():
    """Mounted under /admin/ so the page has the admin's login, chrome and CSRF."""
    return [
        path(
            "customer/find/",
            admin.site.admin_view(customer_search_view),
            name="customer_search",
        ),
        path(
            "customer/<int:pk>/",
            admin.site.admin_view(customer_view),
            name="customer",
        ),
    ]
