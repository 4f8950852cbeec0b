import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.services import set_low_balance_threshold
from core.money import yuan

from . import selectors
from .forms import StatementFilterForm, ThresholdForm
from .history_chart import history_svg
from .micro import from_micro
from .models import TxnKind

CHART_DAYS = (30, 90)
CSV_CHUNK = 1000


def _statement_form(request, account):
    return StatementFilterForm(request.GET or None, account=account, kinds=TxnKind.choices)


def _filters(form):
    since, until = form.bounds()
    return {
        "kind": form.cleaned_data.get("kind") or "",
        "since": since,
        "until": until,
        "api_key": form.cleaned_data.get("api_key"),
    }


@login_required
@require_http_methods(["GET", "POST"])
def balance(request):
    """The user's balance by bucket, the daily chart, lots, grants and the statement."""
    account = request.user.balance_account
    current = account.low_balance_threshold
    form = ThresholdForm(
        request.POST or None,
        initial={"threshold": f"{current.amount:.2f}" if current is not None else ""},
    )
    if request.method == "POST" and form.is_valid():
        set_low_balance_threshold(account, form.cleaned_data["threshold"])
        messages.success(request, _("Low-balance notice updated."))
        return redirect("billing:balance")
    days = 90 if request.GET.get("days") == "90" else 30
    statement_form = _statement_form(request, account)
    buckets = selectors.own_buckets(account)
    status = 200
    lines, next_before = [], None
    if statement_form.is_bound and not statement_form.is_valid():
        status = 400
    else:
        if not statement_form.is_bound:
            statement_form = StatementFilterForm({}, account=account, kinds=TxnKind.choices)
            statement_form.is_valid()
        lines, next_before = selectors.statement(
            account,
            before=statement_form.cleaned_data.get("before"),
            buckets=buckets,
            **_filters(statement_form),
        )
    history = selectors.daily_history(account, days, timezone.localdate(), buckets=buckets)
    next_query = request.GET.copy()
    if next_before:
        next_query["before"] = next_before
    context = {
        "account": account,
        "summary": selectors.balance_summary(account, buckets=buckets),
        "lots": list(selectors.lots_for(account)[:50]),
        "grants": list(selectors.grants_for(account)[:50]),
        "chart": history_svg(history),
        "chart_days": days,
        "chart_choices": CHART_DAYS,
        "statement_form": statement_form,
        "lines": lines,
        "next_query": next_query.urlencode() if next_before else "",
        "csv_query": request.GET.urlencode(),
        "form": form,
    }
    return render(request, "billing/balance.html", context, status=status)


class _Echo:
    def write(self, value):
        return value


def _csv_rows(account, filters):
    header = [
        _("Time (Asia/Shanghai)"),
        _("Kind"),
        _("Change to available (CNY)"),
        _("Cash"),
        _("Trial funds"),
        _("Discount"),
        _("Other buckets"),
        _("Request"),
        _("API key"),
        _("Model"),
        _("Memo"),
    ]
    yield header
    before = None
    while True:
        lines, before = selectors.statement(account, before=before, limit=CSV_CHUNK, **filters)
        for line in lines:
            txn, charge = line.transaction, line.charge
            yield [
                timezone.localtime(txn.created_at).isoformat(),
                txn.get_kind_display(),
                f"{from_micro(line.available_micro).amount:.6f}",
                f"{from_micro(line.buckets.get('cash', 0)).amount:.6f}",
                f"{from_micro(line.buckets.get('trial', 0)).amount:.6f}",
                f"{from_micro(line.buckets.get('discount', 0)).amount:.6f}",
                "; ".join(f"{k} {yuan(from_micro(v).amount, 6)}" for k, v in line.other_buckets),
                charge.request_id if charge else "",
                charge.api_key.prefix if charge and charge.api_key else "",
                charge.model if charge else "",
                txn.memo,
            ]
        if before is None:
            return


@login_required
@require_GET
def statement_csv(request):
    """Every movement matching the page's filters, streamed in chunks (no COUNT, no
    whole-table buffer)."""
    account = request.user.balance_account
    form = _statement_form(request, account)
    if not form.is_bound:
        form = StatementFilterForm({}, account=account, kinds=TxnKind.choices)
    if not form.is_valid():
        return render(
            request,
            "billing/balance_filter_error.html",
            {"statement_form": form},
            status=400,
        )
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _csv_rows(account, _filters(form))),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="statement-{stamp}.csv"'
    return response
