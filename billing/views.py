import csv
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
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
    summary = selectors.balance_summary(account, buckets=buckets)
    line_query = {}
    if statement_form.is_valid() and statement_form.cleaned_data.get("api_key"):
        line_query["api_key"] = statement_form.cleaned_data["api_key"].pk
    context = {
        "account": account,
        "summary": summary,
        # the latest events not settled yet (a query only when there are any)
        "pending_events": selectors.pending_events(account) if summary["pending"] else [],
        "line_query": urlencode(line_query),
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


def _paid_text(split):
    """An event's split for the CSV: "trial grant #3 0.500000; cash lot #7 1.000000"."""
    out = []
    for part in selectors.paid_by(split):
        source = ""
        if part["lot"]:
            source = f" lot #{part['lot']}"
        elif part["grant"]:
            source = f" grant #{part['grant']}"
        out.append(f"{part['bucket']}{source} {part['amount'].amount:.6f}")
    return "; ".join(out)


def _exact(micro):
    return f"{from_micro(micro).amount:.6f}"


def _csv_rows(account, filters):
    """One row per movement; a usage line (one settlement of many events, R-USE-5) is
    written as one row per event, with that event's own parts, so the rows still add up
    to every bucket's movement exactly."""
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
        _("Transaction"),
        _("Received (Asia/Shanghai)"),
        _("Paid from"),
    ]
    yield header
    before = None
    while True:
        lines, before = selectors.statement(account, before=before, limit=CSV_CHUNK, **filters)
        usage = [line.transaction.pk for line in lines if line.transaction.kind == TxnKind.USAGE]
        events = iter(selectors.events_of(account, usage, api_key=filters.get("api_key")))
        event = next(events, None)
        for line in lines:
            txn = line.transaction
            when = timezone.localtime(txn.created_at).isoformat()
            if txn.kind != TxnKind.USAGE:
                yield [
                    when,
                    txn.get_kind_display(),
                    _exact(line.available_micro),
                    _exact(line.buckets.get("cash", 0)),
                    _exact(line.buckets.get("trial", 0)),
                    _exact(line.buckets.get("discount", 0)),
                    "; ".join(
                        f"{k} {yuan(from_micro(v).amount, 6)}" for k, v in line.other_buckets
                    ),
                    "",
                    "",
                    "",
                    txn.memo,
                    txn.pk,
                    "",
                    "",
                ]
                continue
            # events come newest line first, in id order within a line: the lines' order
            while event is not None and event.transaction_id == txn.pk:
                spent = event.trial_micro + event.discount_micro + event.cash_micro
                yield [
                    when,
                    txn.get_kind_display(),
                    _exact(-spent),
                    _exact(-event.cash_micro),
                    _exact(-event.trial_micro),
                    _exact(-event.discount_micro),
                    f"arrears {yuan(from_micro(-event.arrears_micro).amount, 6)}"
                    if event.arrears_micro
                    else "",
                    event.request_id,
                    event.api_key.prefix if event.api_key else "",
                    event.model,
                    txn.memo,
                    txn.pk,
                    timezone.localtime(event.created_at).isoformat(),
                    _paid_text(event.split),
                ]
                event = next(events, None)
        if before is None:
            return


@login_required
@require_GET
def usage_events(request, txn_id):
    """Every event one usage line of the statement settled (its "N more"), oldest first,
    paged by id; the user's own lines only (another's is a 404)."""
    account = request.user.balance_account
    form = _statement_form(request, account)
    api_key = form.cleaned_data.get("api_key") if form.is_bound and form.is_valid() else None
    try:
        after = int(request.GET.get("after") or 0)
    except ValueError:
        after = 0
    txn, events, next_after = selectors.line_events(account, txn_id, api_key=api_key, after=after)
    if txn is None:
        raise Http404
    next_query = request.GET.copy()
    if next_after:
        next_query["after"] = next_after
    return render(
        request,
        "billing/usage_events.html",
        {
            "txn": txn,
            "events": events,
            "api_key": api_key,
            "next_query": next_query.urlencode() if next_after else "",
        },
    )


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
