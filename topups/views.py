"""Top-up pages and the Alipay endpoints: parse, call a service, render."""

import logging
from urllib.parse import urlencode, urlparse

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import agreement_in_force, current_acceptance
from billing.models import Channel

from . import alipay, sandbox, selectors
from .forms import TopUpForm
from .services.alipay_notifications import handle_alipay_notification
from .services.orders import cancel_topup, start_topup
from .services.preconditions import TopUpRefused, check_preconditions

logger = logging.getLogger(__name__)


def _client_ip(request):
    return request.META.get("REMOTE_ADDR", "")


@login_required
@require_http_methods(["GET", "POST"])
def start(request):
    """The top-up page: amount, channel, the agreement in force, and what is missing."""
    form = TopUpForm(request.POST or None)
    refused = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            topup = start_topup(
                request.user,
                data["amount"],
                channel=data["channel"],
                currency=data.get("currency") or "CNY",
                accept_version=data["agreement_version"] if data["accept_agreement"] else None,
                ip=_client_ip(request),
            )
        except TopUpRefused as exc:
            refused = exc.problems
        else:
            if topup.channel == Channel.ALIPAY:
                try:
                    url = _alipay_url(request, topup)
                except ImproperlyConfigured:
                    logger.exception("Alipay is not configured")
                    messages.error(request, _("Alipay is not available right now."))
                    return redirect("topups:detail", pk=topup.pk)
                return redirect(url)
            return redirect("topups:detail", pk=topup.pk)
    context = {
        "form": form,
        "problems": check_preconditions(request.user),
        "refused": refused,
        "agreement": agreement_in_force(None),
        "accepted": current_acceptance(request.user, None),
        "min": settings.TOPUP_MIN,
        "max": settings.TOPUP_MAX,
    }
    return render(request, "topups/start.html", context)


@login_required
def detail(request, pk):
    """The result page: state of the order, how to pay a bank transfer, the new balance."""
    topup = selectors.topup_for_user(request.user, pk)
    return render(
        request,
        "topups/detail.html",
        {
            "topup": topup,
            "bank": settings.BANK_RECEIVING_ACCOUNT,
            "summary": selectors.balance_summary(topup.account),
            "payable": selectors.payable_now(topup),
        },
    )


def _alipay_url(request, topup):
    return alipay.page_pay_url(
        topup,
        notify_url=request.build_absolute_uri(reverse("topups:alipay_notify")),
        return_url=request.build_absolute_uri(reverse("topups:alipay_return")),
    )


@login_required
@require_POST
def pay(request, pk):
    """Pay an unpaid Alipay order later: back to Alipay's cashier for the same order
    (same order number, so Alipay never takes two payments for it)."""
    topup = selectors.topup_for_user(request.user, pk)
    if not selectors.payable_now(topup):
        messages.error(request, _("This order can no longer be paid. Start a new top-up."))
        return redirect("topups:detail", pk=topup.pk)
    try:
        return redirect(_alipay_url(request, topup))
    except ImproperlyConfigured:
        logger.exception("Alipay is not configured")
        messages.error(request, _("Alipay is not available right now."))
        return redirect("topups:detail", pk=topup.pk)


@login_required
def by_lot(request, lot_id):
    """From a lot on the balance page to the top-up that paid it."""
    return redirect("topups:detail", selectors.topup_for_users_lot(request.user, lot_id).pk)


@login_required
@require_POST
def cancel(request, pk):
    topup = selectors.topup_for_user(request.user, pk)
    try:
        cancel_topup(topup, actor=request.user)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, _("The order is cancelled."))
    return redirect("topups:detail", pk=topup.pk)


@login_required
def history(request):
    return render(
        request,
        "topups/history.html",
        {
            "topups": selectors.topups_for(request.user),
            "grants": selectors.grants_for(request.user.balance_account),
        },
    )


@csrf_exempt
@require_POST
def alipay_notify(request):
    """Alipay's asynchronous notification (fixed URL). Answers plain `success` or `failure`."""
    params = {key: request.POST.get(key) for key in request.POST}
    try:
        result = handle_alipay_notification(params)
    except ImproperlyConfigured:
        logger.exception("Alipay notification received but Alipay is not configured")
        return HttpResponse("failure", content_type="text/plain")
    if not result.ok:
        logger.warning("Alipay notification refused: %s", result.outcome)
    return HttpResponse(result.answer, content_type="text/plain")


@login_required
def alipay_return(request):
    """Where the browser comes back; the page shows the stored state, never trusts the query."""
    topup = (
        selectors.topups_for(request.user)
        .filter(out_trade_no=request.GET.get("out_trade_no", ""))
        .first()
    )
    if topup is None:
        return redirect("topups:history")
    return redirect("topups:detail", pk=topup.pk)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def sandbox_gateway(request):
    """The sandbox gateway (ALIPAY_SANDBOX only): one URL, Alipay's `method` parameter.

    Server-to-server OpenAPI calls (alipay.trade.refund, …refund.query) are posted
    without a CSRF token, as to Alipay, and answer signed JSON; everything else is the
    page-pay cashier, whose own form keeps Django's CSRF check (csrf_protect below).
    """
    if not settings.ALIPAY_SANDBOX:
        raise Http404
    method = request.POST.get("method") or request.GET.get("method") or ""
    if method and method != "alipay.trade.page.pay":
        params = {**request.GET.dict(), **request.POST.dict()}
        status, body, content_type = sandbox.openapi_call(params)
        return HttpResponse(body, status=status, content_type=content_type)
    return _sandbox_cashier(request)


@csrf_protect
def _sandbox_cashier(request):
    """The sandbox cashier: plays Alipay's page-pay gateway."""
    source = request.GET if request.method == "GET" else request.POST
    params = {
        key: source.get(key)
        for key in source
        if key not in ("csrfmiddlewaretoken", "action", "payer_name", "payer_account")
    }
    if not sandbox.verify_request(params) or params.get("method") != "alipay.trade.page.pay":
        return HttpResponseBadRequest("Invalid request signature.", content_type="text/plain")
    import json

    biz = json.loads(params["biz_content"])
    if request.method == "POST":
        return_url = params.get("return_url", "")
        back = f"{return_url}?{urlencode({'out_trade_no': biz['out_trade_no']})}"
        if request.POST.get("action") != "pay":
            return redirect(back)
        notification = sandbox.notification_for(
            params,
            payer_name=request.POST.get("payer_name", "").strip()[:100],
            payer_account=request.POST.get("payer_account", "").strip()[:100],
        )
        notify_url = params.get("notify_url", "")
        if urlparse(notify_url).scheme not in ("http", "https"):
            return HttpResponseBadRequest("Bad notify_url.", content_type="text/plain")
        answer = sandbox.post_notification(notify_url, notification)
        if answer != "success":
            return render(
                request,
                "topups/sandbox_cashier.html",
                {"params": params, "biz": biz, "error": answer},
                status=502,
            )
        return redirect(back)
    return render(request, "topups/sandbox_cashier.html", {"params": params, "biz": biz})


@login_required
@require_http_methods(["GET", "POST"])
def sandbox_refunds(request):
    """Sandbox refund records and failure switches per trade (ALIPAY_SANDBOX, staff only)."""
    if not settings.ALIPAY_SANDBOX or not request.user.is_staff:
        raise Http404
    source = request.POST if request.method == "POST" else request.GET
    out_trade_no = source.get("out_trade_no", "").strip()[:64]
    if request.method == "POST" and out_trade_no:
        if request.POST.get("action") == "reset":
            sandbox.reset(out_trade_no)
        else:
            try:
                seconds = min(max(float(request.POST.get("seconds") or 20), 0.0), 120.0)
            except ValueError:
                seconds = 20.0
            refusal = request.POST.get("refusal") or None
            if refusal is None or refusal in sandbox.TRADE_REFUSALS:
                sandbox.set_trade_refusal(out_trade_no, refusal)
            if request.POST.get("next") in sandbox.FAILURES:
                sandbox.fail_next_call(out_trade_no, request.POST["next"], seconds=seconds)
        return redirect(
            f"{reverse('topups:sandbox_refunds')}?{urlencode({'out_trade_no': out_trade_no})}"
        )
    context = {"out_trade_no": out_trade_no}
    if out_trade_no:
        context.update(
            refunds=sandbox.refunds_of(out_trade_no),
            refusal=sandbox.trade_refusal(out_trade_no),
            next_failure=sandbox.next_failure(out_trade_no),
            refusals=[(name, code) for name, (code, _) in sandbox.TRADE_REFUSALS.items()],
            failures=list(sandbox.FAILURES.items()),
        )
    return render(request, "topups/sandbox_refunds.html", context)
