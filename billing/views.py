import csv
import io
import itertools
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from accounts.services import set_low_balance_threshold
from core.csvsafe import BOM, safe_row
from core.money import yuan

from . import selectors
from .forms import StatementFilterForm, ThresholdForm, UsageFilterForm
from .history_chart import history_svg
from .memos import bucket_name, memo_text
from .micro import from_micro
from .models import TxnKind
from .usage_chart import usage_svg

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
            source = f" {_('lot')} #{part['lot']}"
        elif part["grant"]:
            source = f" {_('grant')} #{part['grant']}"
        out.append(f"{bucket_name(part['bucket'])}{source} {part['amount'].amount:.6f}")
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
                        f"{bucket_name(k)} {yuan(from_micro(v).amount, 6)}"
                        for k, v in line.other_buckets
                    ),
                    "",
                    "",
                    "",
                    memo_text(txn.memo),
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
                    f"{bucket_name('arrears')} {yuan(from_micro(-event.arrears_micro).amount, 6)}"
                    if event.arrears_micro
                    else "",
                    event.request_id,
                    event.api_key.prefix if event.api_key else "",
                    event.model,
                    memo_text(txn.memo),
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
        # UTF-8 with BOM (Chinese Excel), every cell formula-safe (a model may be "=HYPERLINK(…)")
        itertools.chain(
            [BOM], (writer.writerow(safe_row(row)) for row in _csv_rows(account, _filters(form)))
        ),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="statement-{stamp}.csv"'
    return response


def _usage(request):
    """(form, rows, labels, keys) for the usage page and its CSV; rows empty when the
    form is invalid. Reads only the daily rollup (selectors.usage_totals)."""
    from accounts.selectors import api_keys_of

    account = request.user.balance_account
    keys = api_keys_of(request.user)
    form = UsageFilterForm(request.GET, keys=keys)
    if not form.is_valid():
        return form, [], [], account
    d = form.cleaned_data
    key = d.get("api_key")
    rows = selectors.usage_totals(
        account.pk,
        start=d["start"],
        end=d["end"],
        by=d["by"],
        model=d.get("model") or None,
        api_key_id=key.pk if key else None,
    )
    if d["by"] == "key":
        names = {k.pk: f"{k.name} ({k.prefix}…)" for k in form.fields["api_key"].queryset}
        labels = [names.get(r.key, _("No key")) if r.key else _("No key") for r in rows]
    else:
        labels = [r.key.isoformat() if d["by"] == "day" else r.key for r in rows]
    return form, rows, labels, account


@login_required
@require_GET
def usage(request):
    """Usage by day, model or API key, with calls, amount and tokens: a table, a chart
    and a CSV of the same figures, over a range of Beijing dates."""
    form, rows, labels, account = _usage(request)
    totals = {
        "calls": sum(r.calls for r in rows),
        "amount": from_micro(sum(r.amount_micro for r in rows)),
        "input_tokens": sum(r.input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
    }
    models = []
    if form.is_valid():
        models = selectors.usage_models(
            account.pk, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
        )
    return render(
        request,
        "billing/usage.html",
        {
            "form": form,
            "rows": list(zip(rows, labels, strict=True)),
            "totals": totals,
            "models": models,
            "chart": usage_svg(rows, labels),
            "by": form.cleaned_data.get("by", "day") if form.is_valid() else "day",
            "csv_query": request.GET.urlencode(),
        },
        status=200 if form.is_valid() else 400,
    )


@login_required
@require_GET
def usage_csv(request):
    """The usage page's table as CSV (UTF-8 with BOM, cells made formula-safe)."""
    form, rows, labels, _account = _usage(request)
    if not form.is_valid():
        return render(
            request,
            "billing/usage.html",
            {"form": form, "rows": [], "totals": {}, "models": [], "by": "day"},
            status=400,
        )
    group = dict(UsageFilterForm.BY)[form.cleaned_data["by"]]
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(
        safe_row([group, _("Calls"), _("Amount (CNY)"), _("Input tokens"), _("Output tokens")])
    )
    for r, label in zip(rows, labels, strict=True):
        writer.writerow(
            safe_row([label, r.calls, _exact(r.amount_micro), r.input_tokens, r.output_tokens])
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    d = form.cleaned_data
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{d["start"].isoformat()}-{d["end"].isoformat()}.csv"'
    )
    return response


# ---------------------------------------------------------------- spend limits and packages


def _limit_rows(account):
    rows = selectors.spend_limits_of(account)
    for row in rows:
        row["scope_label"] = (
            _("API key %(prefix)s…") % {"prefix": row["limit"].api_key.prefix}
            if row["limit"].api_key_id
            else _("The whole account")
        )
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def limits(request):
    """R-USE-7: the user's monthly and daily spend limits, on the account and each key,
    with the spend of the current period against each."""
    from .forms import SpendLimitForm
    from .services.engine import LedgerError
    from .services.spend_limits import remove_spend_limit, set_spend_limit

    account = request.user.balance_account
    form = SpendLimitForm(request.POST or None, account=account)
    initial_scope = request.GET.get("key")
    if request.method == "GET" and initial_scope in form.keys:
        form.fields["scope"].initial = initial_scope
    if request.method == "POST" and request.POST.get("remove"):
        try:
            limit_id = int(request.POST["remove"])
        except ValueError:
            limit_id = 0
        if remove_spend_limit(account=account, limit_id=limit_id):
            messages.success(request, _("Spend limit removed."))
        return redirect("billing:limits")
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                set_spend_limit(
                    account=account,
                    api_key=form.api_key,
                    period=form.cleaned_data["period"],
                    amount=form.cleaned_data["amount"],
                    hard=form.cleaned_data["hard"],
                )
            except LedgerError:
                form.add_error(None, _("This limit could not be saved; check the values."))
                status = 400
            else:
                messages.success(request, _("Spend limit saved."))
                return redirect("billing:limits")
        else:
            status = 400
    return render(
        request,
        "billing/limits.html",
        {"form": form, "rows": _limit_rows(account)},
        status=status,
    )


# lazy: read at request time, in the user's language
PACKAGE_REFUSALS = {
    "not_on_sale": gettext_lazy("This package is not on sale."),
    "per_user_limit": gettext_lazy("You already bought this package as many times as allowed."),
    "email_unverified": gettext_lazy("Verify your email address before buying a package."),
    "insufficient_balance": gettext_lazy("Your available balance does not cover the full price."),
    "arrears": gettext_lazy("Top up to clear your arrears before buying a package."),
}


@login_required
@require_http_methods(["GET", "POST"])
def packages(request):
    """R-PKG-2: the packages on sale and the user's own; buying one from the balance."""
    import uuid

    from .services.engine import LedgerError
    from .services.packages import buy_package

    account = request.user.balance_account
    status = 200
    if request.method == "POST":
        try:
            package_id = int(request.POST.get("package", ""))
        except ValueError:
            package_id = 0
        token = (request.POST.get("token") or "").strip()[:64]
        if not token:
            messages.error(request, _("The form expired; please try again."))
            return redirect("billing:packages")
        try:
            buy_package(account=account, package_id=package_id, idempotency_key=token)
        except LedgerError as exc:
            status = 400
            messages.error(
                request,
                PACKAGE_REFUSALS.get(exc.code, _("This account may not buy a package now.")),
            )
        else:
            messages.success(request, _("Package bought: it pays for its models' calls first."))
            return redirect("billing:packages")
    now = timezone.now()
    return render(
        request,
        "billing/packages.html",
        {
            "catalogue": selectors.packages_on_sale(now),
            "holdings": selectors.holdings_of(account),
            "token": uuid.uuid4().hex,
            "summary": selectors.balance_summary(account),
        },
        status=status,
    )
