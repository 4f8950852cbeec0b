"""The invoice desk for finance (R-INV-2, R-INV-4, R-ADM-3).

The queue is ordered oldest first and filtered by state, kind and title type, with the
consumption each request covers (months, and the account's consumed / invoiced /
invoiceable now). Issuing is its own page: finance uploads what the tax platform
returned (PDF, OFD, XML), "Check" shows the fields read from the XML next to the
request's, "Issue" runs the issue service (which checks again). Reject and reverse
(red-letter) are the workflow buttons. A monthly CSV gives invoiced vs consumed vs
invoiceable per account.
"""

import csv
import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from core.admin import (
    AuditRecordInline,
    CustomerLinkMixin,
    ProtectedFileInline,
    WorkflowAdminMixin,
)
from core.workflow import perform_transition

from .models import InvoiceFile, InvoiceProof, InvoiceRequest, InvoiceState
from .selectors import invoiceable_for, monthly_report
from .services.filing import PROOF_PERM, read_proof
from .services.issuing import FILE_PERM, read_invoice_file, xml_check

ISSUE_PERM = "invoices.issue_invoicerequest"


def _money(micro):
    from billing.micro import from_micro

    return f"{from_micro(micro).amount:.2f}"  # the CSV report's plain figure


def _yuan(micro):
    from billing.micro import from_micro
    from core.money import yuan

    return yuan(from_micro(micro).amount)  # "¥1,234.50", as everywhere in the admin


class InvoiceFileInline(ProtectedFileInline):
    model = InvoiceFile
    fields = ("kind", "size", "sha256", "uploaded_by", "uploaded_at", "open")
    readonly_fields = fields
    verbose_name_plural = _(
        "Issued invoice files (encrypted; downloading needs the file permission)"
    )
    file_permission = FILE_PERM
    file_url_name = "admin:invoices_invoicerequest_file"
    file_link_text = _("Download (audited)")


class InvoiceProofInline(ProtectedFileInline):
    model = InvoiceProof
    fields = ("uploaded_at", "uploaded_by", "content_type", "open")
    readonly_fields = fields
    verbose_name_plural = _("Title proof files (encrypted; opening one needs the proof permission)")
    file_permission = PROOF_PERM
    file_url_name = "admin:invoices_invoicerequest_proof"


class IssueForm(forms.Form):
    """What the tax platform returned. With the XML, the number is read from it."""

    pdf = forms.FileField(required=False, label=_("PDF"))
    ofd = forms.FileField(required=False, label=_("OFD"))
    xml = forms.FileField(required=False, label=_("XML"))
    invoice_number = forms.CharField(
        label=_("invoice number"),
        max_length=20,
        required=False,
        help_text=_("20 digits. Needed without the XML; with it, must equal the XML's."),
    )
    issued_on = forms.DateField(
        label=_("issued on"),
        required=False,
        help_text=_("YYYY-MM-DD; empty = the XML's issue date or today."),
    )
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False
    )


class MonthForm(forms.Form):
    month = forms.RegexField(
        label=_("month"), regex=r"^\d{4}-(0[1-9]|1[0-2])$", help_text=_("YYYY-MM")
    )


@admin.register(InvoiceRequest)
class InvoiceRequestAdmin(CustomerLinkMixin, WorkflowAdminMixin, admin.ModelAdmin):
    """The invoice queue: oldest first; buttons run the invoice services."""

    customer_user_path = "account__user_id"

    fsm_fields = ["state"]
    change_list_template = "admin/invoices/invoicerequest/change_list.html"
    list_display = (
        "id",
        "user_email",
        "customer",
        "state",
        "kind",
        "title_type",
        "title",
        "amount_cny",
        "covers",
        "created_at",
        "waiting",
        "invoice_number",
    )
    list_filter = ("state", "kind", "title_type")
    date_hierarchy = "created_at"
    ordering = ("created_at", "id")
    search_fields = (
        "=id",
        "account__user__email",
        "account__user__phone",
        "=invoice_number",
        "title",
        "=taxpayer_id",
    )
    list_select_related = ("account__user",)
    inlines = [InvoiceFileInline, InvoiceProofInline, AuditRecordInline]
    readonly_fields = (
        "account",
        "customer",
        "state",
        "kind",
        "title_type",
        "title",
        "taxpayer_id",
        "registered_address",
        "registered_phone",
        "bank_name",
        "bank_account",
        "email",
        "amount_cny",
        "covers",
        "consumption",
        "filed_by",
        "created_at",
        "invoice_number",
        "issued_on",
        "issuer",
        "xml_read",
        "decision_reason",
        "red_letter_reason",
        "red_letter_number",
        "closed_at",
    )
    fields = readonly_fields

    @admin.display(description=_("User"), ordering="account__user__email")
    def user_email(self, obj):
        return obj.account.user.email

    @admin.display(description=_("Amount (CNY)"), ordering="amount_micro")
    def amount_cny(self, obj):
        return _yuan(obj.amount_micro)

    @admin.display(description=_("Consumption covered"))
    def covers(self, obj):
        if not obj.covers_from:
            return "—"
        start, end = f"{obj.covers_from:%Y-%m}", f"{obj.covers_to:%Y-%m}"
        return start if start == end else f"{start} – {end}"

    @admin.display(description=_("Waiting"))
    def waiting(self, obj):
        return timesince(obj.created_at) if obj.state == InvoiceState.SUBMITTED else "—"

    @admin.display(description=_("Account now (R-INV-1): consumption by month"))
    def consumption(self, obj):
        figures = invoiceable_for(obj.account)
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f"{m.month:%Y-%m}", _yuan(m.consumed_micro), _yuan(m.invoiced_micro))
                for m in figures.months
            ),
        )
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>{}</table><p>{}</p>",
            _("month"),
            _("cash consumed"),
            _("invoiced or requested"),
            body,
            _("Consumed %(consumed)s − invoiced or requested %(invoiced)s = invoiceable %(left)s")
            % {
                "consumed": _yuan(figures.consumed_micro),
                "invoiced": _yuan(figures.invoiced_micro),
                "left": _yuan(figures.invoiceable_micro),
            },
        )

    @admin.display(description=_("Read from the invoice XML"))
    def xml_read(self, obj):
        if not obj.xml_fields:
            return "—"
        return format_html_join(
            "", "<div>{}: <code>{}</code></div>", sorted(obj.xml_fields.items())
        )

    def has_add_permission(self, request):
        return False  # filed through invoices.services.filing.submit_invoice

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if (
            obj is not None
            and obj.state == InvoiceState.SUBMITTED
            and request.user.has_perm(ISSUE_PERM)
        ):
            extra_context["workflow_links"] = [
                {
                    "label": _("Issue (upload the tax platform's files)"),
                    "url": reverse("admin:invoices_invoicerequest_issue", args=[obj.pk]),
                }
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("report/", wrap(self.report_view), name="invoices_invoicerequest_report"),
            path("<int:pk>/issue/", wrap(self.issue_view), name="invoices_invoicerequest_issue"),
            path(
                "<int:pk>/file/<int:file_id>/",
                wrap(self.file_view),
                name="invoices_invoicerequest_file",
            ),
            path(
                "<int:pk>/proof/<int:proof_id>/",
                wrap(self.proof_view),
                name="invoices_invoicerequest_proof",
            ),
            *super().get_urls(),
        ]

    # --- issuing ------------------------------------------------------------------------

    def issue_view(self, request, pk):
        if not (self.has_view_permission(request) and request.user.has_perm(ISSUE_PERM)):
            raise PermissionDenied
        obj = get_object_or_404(InvoiceRequest.objects.select_related("account__user"), pk=pk)
        change_url = reverse("admin:invoices_invoicerequest_change", args=[obj.pk])
        if obj.state != InvoiceState.SUBMITTED:
            self.message_user(
                request,
                _("Cannot issue: the request is “%(state)s”.") % {"state": obj.get_state_display()},
                messages.ERROR,
            )
            return redirect(change_url)
        form = IssueForm(request.POST or None, request.FILES or None)
        rows, fields, errors = None, None, []
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if data.get("xml"):
                try:
                    fields, rows = xml_check(
                        obj, data["xml"], invoice_number=data.get("invoice_number") or ""
                    )
                except ValidationError as exc:
                    errors.extend(exc.messages)
            if "issue" in request.POST and not errors:
                try:
                    perform_transition(
                        obj,
                        "issue",
                        actor=request.user,
                        reason=data.get("reason") or "issued",
                        invoice_number=data.get("invoice_number") or "",
                        issued_on=data.get("issued_on"),
                        pdf=data.get("pdf"),
                        ofd=data.get("ofd"),
                        xml=data.get("xml"),
                    )
                except PermissionDenied as exc:
                    errors.append(str(exc) or "Not allowed.")
                except ValidationError as exc:
                    errors.extend(exc.messages)
                else:
                    obj.refresh_from_db()
                    self.message_user(
                        request,
                        _("Issued: invoice %(number)s. The user is told.")
                        % {"number": obj.invoice_number},
                    )
                    return redirect(change_url)
        status = 400 if errors else 200
        return render(
            request,
            "admin/invoices/invoicerequest/issue.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": obj,
                "title": f"Issue invoice request #{obj.pk}",
                "form": form,
                "rows": rows,
                "fields_read": fields,
                "errors": errors,
                "amount": _yuan(obj.amount_micro),
                "change_url": change_url,
            },
            status=status,
        )

    # --- files ----------------------------------------------------------------------------

    def file_view(self, request, pk, file_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        item = get_object_or_404(
            InvoiceFile.objects.select_related("request__account"), pk=file_id, request_id=pk
        )
        try:
            data, content_type, name = read_invoice_file(item, actor=request.user)
        except FileNotFoundError:
            raise PermissionDenied
        return _attachment(data, content_type, name)

    def proof_view(self, request, pk, proof_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        proof = get_object_or_404(InvoiceProof, pk=proof_id, request_id=pk)
        try:
            data, content_type, name = read_proof(proof, actor=request.user)
        except FileNotFoundError:
            raise PermissionDenied
        return _attachment(data, content_type, name, inline=True)

    # --- the monthly CSV ------------------------------------------------------------------

    def report_view(self, request):
        """Per account, for one month: cash consumed, invoices issued and reversed in it,
        and at its end consumed, invoiced and still invoiceable (CSV for finance)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        default = (timezone.localdate().replace(day=1) - datetime.timedelta(days=1)).strftime(
            "%Y-%m"
        )
        form = MonthForm(request.GET or {"month": default})
        if not form.is_valid() or "month" not in request.GET:
            return render(
                request,
                "admin/invoices/invoicerequest/report.html",
                {
                    **self.admin_site.each_context(request),
                    "opts": self.model._meta,
                    "title": _("Monthly invoice report"),
                    "form": form,
                },
                status=400 if request.GET else 200,
            )
        year, month = (int(x) for x in form.cleaned_data["month"].split("-"))
        rows = monthly_report(datetime.date(year, month, 1))

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def lines():
            yield writer.writerow(
                [
                    "month",
                    "account",
                    "user",
                    "cash consumed in month (CNY)",
                    "invoiced in month (CNY)",
                    "reversed in month (CNY)",
                    "consumed to month end (CNY)",
                    "invoiced to month end (CNY)",
                    "invoiceable at month end (CNY)",
                ]
            )
            for row in rows:
                yield writer.writerow(
                    [
                        form.cleaned_data["month"],
                        row.account_id,
                        row.email,
                        _money(row.consumed_micro),
                        _money(row.issued_micro),
                        _money(row.reversed_micro),
                        _money(row.consumed_to_date_micro),
                        _money(row.invoiced_to_date_micro),
                        _money(row.invoiceable_micro),
                    ]
                )

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="invoices-{form.cleaned_data["month"]}.csv"'
        )
        return response


def _attachment(data, content_type, name, *, inline=False):
    response = HttpResponse(data, content_type=content_type)
    kind = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{kind}; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response
