"""The refund desk for CS and finance (R-REF-1, R-REF-5, R-REF-6).

The queue is ordered oldest first, filtered by state and how the user asked, with the
age of each case; the change page shows the preview, the lines per lot, the payout
attempts with the channel's answers, the proof files (opened only with
refunds.view_refund_proof, each view audited) and the transition buttons, which run
the services of RefundRequest's transition map. Paid refunds export to CSV per line.
"""

import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.micro import from_micro
from core.admin import (
    AuditRecordInline,
    CustomerLinkMixin,
    ProtectedFileInline,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    WorkflowAdminMixin,
    readable_fields,
)
from core.money import yuan

from .forms import StaffFilingForm
from .models import OPEN_STATES, PayoutAttempt, RefundLine, RefundProof, RefundRequest, RefundState
from .services.filing import FILE_PERM, PROOF_PERM, current_preview, read_proof, submit_refund


class RefundLineInline(ReadOnlyInline):
    model = RefundLine
    fields = (
        "lot",
        "channel",
        "trade",
        "asked",
        "arrears",
        "held_amount",
        "refunded_amount",
        "released",
        "out_request_no",
        "payout_state",
        "payout_channel",
        "payout_reference",
        "paid_on",
        "failure_reason",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lot__topup")

    @admin.display(description=_("Top-up order / trade"))
    def trade(self, obj):
        topup = getattr(obj.lot, "topup", None)
        return f"{topup.out_trade_no} / {topup.trade_no or '—'}" if topup else "—"

    @admin.display(description=_("Asked"))
    def asked(self, obj):
        return _money(obj.asked_micro)

    @admin.display(description=_("Arrears settled"))
    def arrears(self, obj):
        return _money(obj.arrears_micro + obj.late_arrears_micro)

    @admin.display(description=_("Held"))
    def held_amount(self, obj):
        return _money(obj.held_micro)

    @admin.display(description=_("Refunded"))
    def refunded_amount(self, obj):
        return _money(obj.refunded_micro)

    @admin.display(description=_("Back to cash"))
    def released(self, obj):
        return _money(obj.released_micro)


class PayoutAttemptInline(ReadOnlyInline):
    model = PayoutAttempt
    fields = ("at", "line", "operation", "outcome", "code", "sub_code", "message", "sent", "answer")
    readonly_fields = fields


class RefundProofInline(ProtectedFileInline):
    model = RefundProof
    fields = ("uploaded_at", "uploaded_by", "content_type", "open")
    readonly_fields = fields
    verbose_name_plural = _("Proof files (encrypted; opening one needs the proof permission)")
    file_permission = PROOF_PERM
    file_url_name = "admin:refunds_refundrequest_proof"


def _money(micro):
    from billing.micro import from_micro
    from core.money import yuan

    return yuan(from_micro(micro).amount)  # "¥1,234.50", as everywhere in the admin


class AgeFilter(admin.SimpleListFilter):
    title = _("age")
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [("1", _("over 1 day")), ("3", _("over 3 days")), ("7", _("over 7 days"))]

    def queryset(self, request, queryset):
        if self.value():
            cutoff = timezone.now() - timezone.timedelta(days=int(self.value()))
            return queryset.filter(created_at__lt=cutoff)
        return queryset


@admin.action(description=_("Export paid refunds (per lot) as CSV"), permissions=["view"])
def export_paid_refunds(modeladmin, request, queryset):
    """Finance's export: one row per paid line of the selected paid requests."""

    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())
    lines = (
        RefundLine.objects.filter(request__in=queryset, request__state=RefundState.PAID)
        .select_related("request__account__user", "lot__topup")
        .order_by("request_id", "id")
    )

    def rows():
        yield writer.writerow(
            [
                "request",
                "user",
                "lot",
                "top-up order",
                "channel",
                "paid via",
                "refunded (CNY)",
                "out_request_no",
                "reference",
                "paid on",
                "approved by",
            ]
        )
        for line in lines.iterator(chunk_size=2000):
            topup = getattr(line.lot, "topup", None)
            yield writer.writerow(
                [
                    line.request_id,
                    line.request.account.user.email,
                    line.lot_id,
                    topup.out_trade_no if topup else "",
                    line.channel,
                    line.payout_channel,
                    f"{line.refunded.amount:.2f}",
                    line.out_request_no,
                    line.payout_reference,
                    line.paid_on.isoformat() if line.paid_on else "",
                    line.request.approver_id or "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="paid-refunds.csv"'
    return response


@admin.register(RefundRequest)
class RefundRequestAdmin(CustomerLinkMixin, WorkflowAdminMixin, admin.ModelAdmin):
    """The refund queue: oldest first; the buttons run the refund services."""

    customer_user_path = "account__user_id"

    fsm_fields = ["state"]
    four_eyes = {"approve": ("reviewer_id", "filed_by_id")}  # R-REF-1: not the reviewer
    next_steps = {
        RefundState.PAYING: _(
            "Next: the payout runs by itself (Alipay, within minutes); if it fails, finance "
            "clicks “Retry payout”; a bank lot waits for finance's “Record bank transfer”."
        ),
    }
    list_display = (
        "id",
        "user_email",
        "customer",
        "state",
        "held_amount",
        "refunded_amount",
        "asked_via",
        "created_at",
        "waiting",
        "reviewer",
        "approver",
    )
    list_filter = ("state", "asked_via", "lines__channel", AgeFilter)
    date_hierarchy = "created_at"
    ordering = ("created_at", "id")
    search_fields = (
        "=id",
        "account__user__email",
        "account__user__phone",
        "lines__lot__topup__out_trade_no",
        "lines__lot__topup__trade_no",
        "lines__out_request_no",
    )
    list_select_related = ("account__user", "reviewer", "approver")
    actions = [export_paid_refunds]
    inlines = [RefundLineInline, PayoutAttemptInline, RefundProofInline, AuditRecordInline]
    readonly_fields = (
        "account",
        "customer",
        "state",
        "filed_by",
        "asked_via",
        "user_reason",
        "requested",
        "held_amount",
        "arrears_amount",
        "refunded_amount",
        "created_at",
        "reviewer",
        "reviewed_at",
        "approver",
        "approved_at",
        "decision_reason",
        "payout_failure",
        "closed_at",
        "preview",
    )
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return queryset, True if search_term else may_have_duplicates

    @admin.display(description=_("User"), ordering="account__user__email")
    def user_email(self, obj):
        return obj.account.user.email

    @admin.display(description=_("Held"))
    def held_amount(self, obj):
        return _money(obj.held_micro)

    @admin.display(description=_("Arrears settled first"))
    def arrears_amount(self, obj):
        return _money(obj.arrears_micro)

    @admin.display(description=_("Refunded"))
    def refunded_amount(self, obj):
        return _money(obj.refunded_micro)

    @admin.display(description=_("Amount asked"))
    def requested(self, obj):
        return "all refundable" if obj.requested_micro is None else _money(obj.requested_micro)

    @admin.display(description=_("Waiting"))
    def waiting(self, obj):
        if obj.state not in (*OPEN_STATES, RefundState.APPROVED, RefundState.PAYOUT_FAILED):
            return "—"
        return timesince(obj.created_at)

    @admin.display(description=_("Preview now (R-REF-2: lots still refundable)"))
    def preview(self, obj):
        if obj.pk and obj.lines.exists():
            return self._case_lots(obj)
        preview = current_preview(obj.account)  # pending usage settled first (issue 24)
        head = mark_safe(  # noqa: S308 (a constant)
            "<tr><th>lot</th><th>channel</th><th>paid</th><th>consumed</th><th>unconsumed</th>"
            "<th>invoiced, unconsumed</th><th>discount earned</th><th>discount used</th>"
            "<th>refundable</th></tr>"
        )
        body = format_html_join(
            "",
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    item.lot_id,
                    item.channel,
                    _money(item.paid_micro),
                    _money(item.consumed_micro),
                    _money(item.unconsumed_micro),
                    _money(item.invoiced_unconsumed_micro),
                    _money(item.discount_earned_micro),
                    _money(item.discount_used_micro),
                    _money(item.refundable_micro),
                )
                for item in preview.lots
            ),
        )
        return format_html(
            "<table>{}{}</table><p>Total {} − arrears {} = {} CNY</p>",
            head,
            body,
            _money(preview.total_micro),
            _money(preview.arrears_micro),
            _money(preview.net_micro),
        )

    def _case_lots(self, obj):
        """A filed case's own lots: once filed, its money is held, so the live preview
        (lots still refundable) reads zero; CS and finance decide on these figures."""
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            gettext("Lot"),
            gettext("Channel"),
            gettext("Amount asked"),
            gettext("Arrears settled"),
            gettext("Held for the refund"),
            gettext("Refunded"),
        )
        lines = list(obj.lines.select_related("lot").order_by("id"))
        body = format_html_join(
            "",
            '<tr class="case-lot"><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:billing_lot_change", args=[line.lot_id]),
                    line.lot_id,
                    line.get_channel_display(),
                    yuan(from_micro(line.asked_micro)),
                    yuan(from_micro(line.arrears_micro)),
                    yuan(from_micro(line.held_micro)),
                    yuan(from_micro(line.refunded_micro)),
                )
                for line in lines
            ),
        )
        return format_html(
            '<table class="case-lots">{}{}</table><p class="case-total">{}</p>',
            head,
            body,
            gettext("This case holds %(held)s on %(n)d lot(s); arrears settled %(arrears)s.")
            % {
                "held": yuan(from_micro(obj.held_micro)),
                "n": len(lines),
                "arrears": yuan(from_micro(obj.arrears_micro)),
            },
        )

    def has_add_permission(self, request):
        return False  # filed through refunds.services.filing.submit_refund

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("file/", wrap(self.file_view), name="refunds_refundrequest_file"),
            path(
                "<int:pk>/proof/<int:proof_id>/",
                wrap(self.proof_view),
                name="refunds_refundrequest_proof",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = dict(extra_context or {})
        if request.user.has_perm(FILE_PERM):
            extra["file_url"] = reverse("admin:refunds_refundrequest_file")
        return super().changelist_view(request, extra_context=extra)

    def file_view(self, request):
        """CS file a refund for a user with their proof files (R-REF-1); the filing
        service decides (standing, refundable amount, files) and holds the money."""
        from accounts.selectors import customers, user_by_email

        if not request.user.has_perm(FILE_PERM):
            raise PermissionDenied
        initial = {}
        customer = request.GET.get("customer", "")
        if customer.isdigit():
            found = customers().filter(pk=int(customer)).first()
            if found is not None:
                initial["email"] = found.email
        form = StaffFilingForm(request.POST or None, request.FILES or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            user = user_by_email(data["email"])
            if user is None:
                form.add_error("email", gettext("No customer with this email."))
            else:
                try:
                    refund = submit_refund(
                        user,
                        proofs=request.FILES.getlist("proofs"),
                        amount=data["amount"] or None,
                        reason=data["reason"],
                        filed_by=request.user,
                        asked_via=data["asked_via"],
                    )
                except (ValidationError, PermissionDenied) as exc:
                    for message in getattr(exc, "messages", [str(exc)]):
                        form.add_error(None, message)
                else:
                    self.message_user(
                        request,
                        gettext(
                            "Refund #%(id)s filed for %(email)s; %(held)s is held. "
                            "Next: a CS agent clicks “Take for review”."
                        )
                        % {"id": refund.pk, "email": user.email, "held": yuan(refund.held)},
                        messages.SUCCESS,
                    )
                    return redirect("admin:refunds_refundrequest_change", refund.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("File a refund for a customer"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/refunds/refundrequest/file.html", context)

    def proof_view(self, request, pk, proof_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        proof = get_object_or_404(RefundProof, pk=proof_id, request_id=pk)
        try:
            data, content_type, name = read_proof(proof, actor=request.user)
        except PermissionDenied:
            raise
        except FileNotFoundError:
            self.message_user(request, "The file is missing.", messages.ERROR)
            raise PermissionDenied
        response = HttpResponse(data, content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        return response


@admin.register(RefundLine)
class RefundLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every line per lot, for finance's search by trade number."""

    list_display = (
        "out_request_no",
        "request",
        "lot",
        "channel",
        "payout_state",
        "payout_channel",
        "payout_reference",
        "paid_on",
    )
    list_filter = ("payout_state", "channel", "payout_channel")
    search_fields = ("out_request_no", "lot__topup__out_trade_no", "lot__topup__trade_no")
    list_select_related = ("request", "lot")
    readonly_fields = fields = readable_fields(RefundLine)
