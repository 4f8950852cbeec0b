"""The user's dispute pages: each dispute, its deadline counting down, the evidence
upload, the outcome and any debt with how to settle it (R-DIS-1 … R-DIS-5).
Parse, call a service, render."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from core.workflow import WorkflowError

from .models import Dispute, DisputeState
from .selectors import dispute_for, disputes_for, evidence_of, payouts_of, topups_of
from .services._common import SHANGHAI
from .services.opening import add_evidence


class EvidenceForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Evidence file (PDF, JPEG or PNG)"),
        help_text=gettext_lazy("E.g. a signed authorisation, a contract or a chat record."),
    )
    note = forms.CharField(
        label=gettext_lazy("What it shows (optional)"), required=False, max_length=500
    )


def _own(user, pk):
    try:
        return dispute_for(user, pk)
    except Dispute.DoesNotExist:
        raise Http404


@login_required
def index(request):
    now = timezone.now()
    rows = disputes_for(request.user)
    for d in rows:
        d.left = d.days_left(now)
    return render(request, "disputes/index.html", {"disputes": rows})


def _render_detail(request, dispute, form, status=200):
    now = timezone.now()
    return render(
        request,
        "disputes/detail.html",
        {
            "dispute": dispute,
            "topups": topups_of(dispute),
            "evidence": evidence_of(dispute),
            "payouts": payouts_of(dispute),
            "form": form,
            "may_upload": dispute.state == DisputeState.OPEN,
            "days_left": dispute.days_left(now),
            "deadline_local": timezone.localtime(dispute.deadline_at, SHANGHAI),
            "due_local": dispute.debt_due_at and timezone.localtime(dispute.debt_due_at, SHANGHAI),
            "deadline_iso": dispute.deadline_at.isoformat(),
        },
        status=status,
    )


@login_required
def detail(request, pk):
    return _render_detail(request, _own(request.user, pk), EvidenceForm())


@login_required
@require_POST
def upload_evidence(request, pk):
    dispute = _own(request.user, pk)
    form = EvidenceForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            add_evidence(
                dispute,
                form.cleaned_data["file"],
                actor=request.user,
                note=form.cleaned_data["note"],
            )
        except (ValidationError, WorkflowError, PermissionDenied) as exc:
            for message in getattr(exc, "messages", [str(exc)]):
                form.add_error(None, message)
        else:
            messages.success(request, _("Your evidence was received; we will review it."))
            return redirect("disputes:detail", dispute.pk)
    return _render_detail(request, dispute, form, status=400)
