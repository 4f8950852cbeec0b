"""The user's refund pages: the preview, the form with proof files, each request's
status and history, cancellation. Parse, call a service, render (R-REF-1 … R-REF-3)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from core.selectors import history_of
from core.workflow import WorkflowError

from .models import OPEN_STATES, RefundRequest
from .selectors import lines_of, request_for, requests_for
from .services.decisions import cancel_refund
from .services.filing import can_file, current_preview, submit_refund


class RefundForm(forms.Form):
    amount = forms.CharField(
        label=gettext_lazy("Amount (CNY, optional)"),
        required=False,
        max_length=20,
        help_text=gettext_lazy("Leave empty to ask for everything refundable now."),
    )
    reason = forms.CharField(
        label=gettext_lazy("Why you ask for a refund"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )


def _own_request(user, pk):
    try:
        return request_for(user, pk)
    except RefundRequest.DoesNotExist:
        raise Http404


@login_required
@require_http_methods(["GET", "POST"])
def index(request):
    """The preview per lot (the same figures staff see), the form, and the requests."""
    account = request.user.balance_account
    form = RefundForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            refund = submit_refund(
                request.user,
                proofs=request.FILES.getlist("proofs"),
                amount=form.cleaned_data["amount"] or None,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            messages.success(request, _("Your refund request was filed; the money is set aside."))
            return redirect("refunds:detail", refund.pk)
    return render(
        request,
        "refunds/index.html",
        {
            "preview": current_preview(account),  # pending usage settled first
            "may_file": can_file(account),
            "form": form,
            "requests": requests_for(request.user),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def detail(request, pk):
    refund = _own_request(request.user, pk)
    return render(
        request,
        "refunds/detail.html",
        {
            "refund": refund,
            "lines": lines_of(refund),
            "history": history_of(refund),
            "cancellable": refund.state in OPEN_STATES,  # cancelled only before approval
        },
    )


@login_required
@require_POST
def cancel(request, pk):
    refund = _own_request(request.user, pk)
    try:
        cancel_refund(refund, actor=request.user, reason="cancelled by the user")
    except (WorkflowError, ValidationError, PermissionDenied) as exc:
        messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, _("Your refund request is cancelled; the money is back."))
    return redirect("refunds:detail", refund.pk)
