"""The user's invoice pages: the invoiceable amount with the consumption by month, the
request form (titles the account may use), each request with its history and the
issued files. Parse, call a service, render (R-INV-1 … R-INV-4)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from core.selectors import history_of

from .models import InvoiceFile, InvoiceKind, InvoiceRequest, TitleType
from .selectors import file_for, invoiceable_for, request_for, requests_for
from .services.filing import can_file, min_amount, submit_invoice, title_options
from .services.issuing import read_invoice_file


class InvoiceForm(forms.Form):
    amount = forms.CharField(label=gettext_lazy("Amount (CNY)"), max_length=20)
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind of invoice"), choices=InvoiceKind.choices, required=False
    )
    title_type = forms.ChoiceField(
        label=gettext_lazy("Title"), choices=TitleType.choices, required=False
    )
    title = forms.CharField(label=gettext_lazy("Company name"), max_length=200, required=False)
    taxpayer_id = forms.CharField(
        label=gettext_lazy("Taxpayer id (unified social credit code)"),
        max_length=30,
        required=False,
    )
    registered_address = forms.CharField(
        label=gettext_lazy("Registered address"), max_length=200, required=False
    )
    registered_phone = forms.CharField(
        label=gettext_lazy("Registered phone"), max_length=40, required=False
    )
    bank_name = forms.CharField(label=gettext_lazy("Bank"), max_length=100, required=False)
    bank_account = forms.CharField(
        label=gettext_lazy("Bank account"), max_length=40, required=False
    )
    email = forms.EmailField(
        label=gettext_lazy("Send the invoice to"),
        required=False,
        help_text=gettext_lazy("Leave empty for your account's email."),
    )

    def __init__(self, *args, options=None, **kwargs):
        super().__init__(*args, **kwargs)
        options = options or {}
        self.fields["kind"].choices = [
            (k, InvoiceKind(k).label) for k in options.get("kinds", [InvoiceKind.ORDINARY])
        ]
        self.fields["title_type"].choices = [
            (t, TitleType(t).label) for t in options.get("title_types", [TitleType.PERSONAL])
        ]
        if options.get("enterprise"):
            # the verified company's name and code, shown and never typed (R-INV-3)
            for name, value in (
                ("title", options["name"]),
                ("taxpayer_id", options["credit_code"]),
            ):
                self.fields[name].initial = value
                self.fields[name].disabled = True
                self.fields[name].widget.attrs["readonly"] = True
            del self.fields["title_type"]
        else:
            for name in ("registered_address", "registered_phone", "bank_name", "bank_account"):
                del self.fields[name]


def _own(user, pk):
    try:
        return request_for(user, pk)
    except InvoiceRequest.DoesNotExist:
        raise Http404


@login_required
@require_http_methods(["GET", "POST"])
def index(request):
    """The invoiceable amount by month, the form, and the user's requests."""
    account = request.user.balance_account
    options = title_options(request.user)
    form = InvoiceForm(request.POST or None, options=options)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        special = {
            k: data.pop(k, "")
            for k in ("registered_address", "registered_phone", "bank_name", "bank_account")
        }
        if data.get("kind") != InvoiceKind.SPECIAL:
            special = {}
        try:
            invoice = submit_invoice(
                request.user,
                amount=data["amount"],
                kind=data.get("kind") or InvoiceKind.ORDINARY,
                title_type=data.get("title_type") or TitleType.PERSONAL,
                title="" if options.get("enterprise") else data.get("title", ""),
                taxpayer_id="" if options.get("enterprise") else data.get("taxpayer_id", ""),
                proofs=request.FILES.getlist("proofs"),
                email=data.get("email") or "",
                **special,
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            messages.success(request, _("Your invoice request was filed; the amount is reserved."))
            return redirect("invoices:detail", invoice.pk)
    return render(
        request,
        "invoices/index.html",
        {
            "figures": invoiceable_for(account),
            "options": options,
            "may_file": can_file(account),
            "minimum": min_amount(),
            "form": form,
            "requests": requests_for(request.user),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def detail(request, pk):
    invoice = _own(request.user, pk)
    return render(
        request,
        "invoices/detail.html",
        {"invoice": invoice, "files": list(invoice.files.all()), "history": history_of(invoice)},
    )


@login_required
def download(request, pk, file_id):
    """An issued invoice file of the user's own request; anyone else's is a 404."""
    try:
        item = file_for(request.user, pk, file_id)
        data, content_type, name = read_invoice_file(item, actor=request.user)
    except (InvoiceFile.DoesNotExist, PermissionDenied, FileNotFoundError):
        raise Http404
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
