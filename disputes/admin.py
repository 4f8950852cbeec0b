"""The dispute desk (R-DIS-1 … R-DIS-5) for CS, risk officers and finance.

- Disputes: the queue ordered by days left (an open dispute's deadline, a debt's due
  date), each case with its disputed top-ups (payer, channel), the rights holder
  (masked), the evidence and proof files (opened only with disputes.view_dispute_file,
  each view audited), the lock it holds on the account and keys, the ledger effects,
  the payouts and the timeline; buttons run the services of Dispute's transition map.
  CS open a dispute from "Open a dispute" and attach a debt's proof from the case.
- Dispute debts: the escalation and debt queue by due date.
- Rights-holder payouts: bank transfers finance records (a button), Alipay refunds.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, Count, F, Q, When
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from accounts.identity import mask_name
from billing.micro import from_micro
from billing.models import LedgerTransaction
from core.admin import (
    AuditRecordInline,
    CustomerLinkMixin,
    ProtectedFileInline,
    ReadOnlyInline,
    WorkflowAdminMixin,
)

from .models import (
    DEBT_STATES,
    DebtCollection,
    Dispute,
    DisputeDebt,
    DisputedTopUp,
    DisputeFile,
    FileKind,
    ReportedVia,
    RightsHolderPayout,
)
from .services.opening import FILE_PERM, add_debt_proof, add_evidence, open_dispute, read_file


def _money(micro):
    from core.money import yuan

    return yuan(from_micro(micro).amount)  # "¥1,234.50", as everywhere in the admin


class DisputedTopUpInline(ReadOnlyInline):
    model = DisputedTopUp
    fields = ("topup", "order", "channel", "paid", "disputed", "payer", "payer_account")
    readonly_fields = fields
    verbose_name_plural = _("Disputed top-ups")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("topup", "lot")

    @admin.display(description=_("Order / trade"))
    def order(self, obj):
        return f"{obj.topup.out_trade_no} / {obj.topup.trade_no or '—'}"

    @admin.display(description=_("Paid"))
    def paid(self, obj):
        from core.money import yuan

        return yuan(obj.lot.amount)

    @admin.display(description=_("Disputed"))
    def disputed(self, obj):
        return _money(obj.amount_micro)

    @admin.display(description=_("Payer"))
    def payer(self, obj):
        return mask_name(obj.topup.payer_name)

    @admin.display(description=_("Payer account"))
    def payer_account(self, obj):
        value = obj.topup.payer_account or ""
        return value[:3] + "***" + value[-4:] if len(value) > 7 else "***"


class DisputeFileInline(ProtectedFileInline):
    model = DisputeFile
    fields = ("uploaded_at", "kind", "uploaded_by", "content_type", "note", "open")
    readonly_fields = fields
    verbose_name_plural = _("Evidence and proof files (encrypted; opening needs the permission)")
    file_permission = FILE_PERM
    file_url_name = "admin:disputes_dispute_file"
    case_field = "dispute"


class PayoutInline(ReadOnlyInline):
    model = RightsHolderPayout
    fields = ("out_request_no", "source", "channel", "amount", "state", "reference", "paid_at")
    readonly_fields = fields
    verbose_name_plural = _("Payouts to the rights holder")

    @admin.display(description=_("Amount"))
    def amount(self, obj):
        return _money(obj.amount_micro)


class CollectionInline(ReadOnlyInline):
    model = DebtCollection
    fields = ("created_at", "txn_id", "amount")
    readonly_fields = fields
    verbose_name_plural = _("Debt paid by top-ups")

    @admin.display(description=_("Amount"))
    def amount(self, obj):
        return _money(obj.amount_micro)


def _clock():
    """Days left sort key: the deadline of an open dispute, the due date of a debt."""
    return Case(
        When(state="open", then=F("deadline_at")),
        When(state__in=DEBT_STATES, then=F("debt_due_at")),
        default=F("closed_at"),
    )


class OpenDisputeForm(forms.Form):
    topups = forms.CharField(
        label=_("top-ups"),
        help_text=_("Order numbers (out_trade_no) of the disputed top-ups, comma-separated."),
    )
    amount = forms.CharField(
        label=_("amount"), max_length=20, help_text=_("Disputed amount, CNY, e.g. 100.00")
    )
    reported_by = forms.CharField(label=_("reported by"), max_length=200)
    reported_via = forms.ChoiceField(label=_("reported via"), choices=ReportedVia.choices)
    rights_holder_name = forms.CharField(label=_("rights holder name"), max_length=200)
    rights_holder_contact = forms.CharField(
        label=_("rights holder contact"), max_length=200, required=False
    )
    payer_account = forms.CharField(
        label=_("payer account"),
        max_length=200,
        required=False,
        help_text=_("As the channel shows it (empty: from the top-up)"),
    )
    report_details = forms.CharField(
        label=_("report details"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )


class ProofForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("kind"),
        choices=FileKind.choices,
        help_text=_(
            "Evidence of consent received for the user (open dispute), or the proof "
            "of a waiver or direct repayment (debt)"
        ),
    )
    file = forms.FileField(label=_("file"), help_text=_("PDF, JPEG or PNG"))
    note = forms.CharField(label=_("note"), max_length=500, required=False)


class _DisputeAdminBase(CustomerLinkMixin, WorkflowAdminMixin, admin.ModelAdmin):
    customer_user_path = "account__user_id"
    fsm_fields = ["state"]
    list_select_related = ("account__user",)
    inlines = [
        DisputedTopUpInline,
        DisputeFileInline,
        PayoutInline,
        CollectionInline,
        AuditRecordInline,
    ]
    readonly_fields = (
        "account",
        "customer",
        "state",
        "locks",
        "reported_by",
        "reported_via",
        "report_details",
        "rights_holder",
        "payer",
        "disputed",
        "opened_by",
        "opened_at",
        "deadline_at",
        "days_left",
        "evidence_rejection",
        "decided_by",
        "refunded",
        "debt_amount",
        "debt_left",
        "debt_due_at",
        "debt_end",
        "escalated_at",
        "closed_at",
        "outcome",
        "ledger_effects",
        "proof_link",
    )
    fields = readonly_fields
    search_fields = ("=id", "account__user__email", "topups__topup__out_trade_no")

    def get_queryset(self, request):
        evidence = Count("files", filter=Q(files__kind=FileKind.EVIDENCE))
        return super().get_queryset(request).annotate(clock=_clock(), evidence_files=evidence)

    @admin.display(description=_("Evidence files"), ordering="evidence_files")
    def evidence_count(self, obj):
        return obj.evidence_files

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("User"), ordering="account__user__email")
    def user_email(self, obj):
        return obj.account.user.email

    @admin.display(description=_("Days left"), ordering="clock")
    def days_left(self, obj):
        left = obj.days_left()
        return "—" if left is None else left

    @admin.display(description=_("Disputed"))
    def disputed(self, obj):
        return _money(obj.disputed_micro)

    @admin.display(description=_("Refunded at the deadline"))
    def refunded(self, obj):
        return _money(obj.refunded_micro)

    @admin.display(description=_("Debt"))
    def debt_amount(self, obj):
        return _money(obj.debt_micro)

    @admin.display(description=_("Debt left"))
    def debt_left(self, obj):
        return _money(obj.debt_left_micro)

    @admin.display(description=_("Rights holder (masked)"))
    def rights_holder(self, obj):
        contact = obj.rights_holder_contact or ""
        return (
            f"{mask_name(obj.rights_holder_name)} / {contact[:3]}***"
            if contact
            else mask_name(obj.rights_holder_name)
        )

    @admin.display(description=_("Payer account (masked)"))
    def payer(self, obj):
        value = obj.payer_account or ""
        return value[:3] + "***" + value[-4:] if len(value) > 7 else "***"

    @admin.display(description=_("Locks (account standing; keys this dispute locked)"))
    def locks(self, obj):
        from accounts.models import ApiKey

        keys = ApiKey.objects.filter(pk__in=obj.locked_key_ids).order_by("pk")
        rows = format_html_join(", ", "{} ({})", ((k.prefix, k.state) for k in keys))
        return format_html(
            "account: {}{}; keys: {}",
            obj.account.get_standing_display(),
            "" if obj.holds_account else " (locked by staff before; not lifted by this dispute)",
            rows or "none",
        )

    @admin.display(description=_("Ledger effects"))
    def ledger_effects(self, obj):
        keys = [f"dispute-refund:{obj.pk}", f"debt-ended:{obj.pk}"] + [
            f"dispute-paid:{p}" for p in obj.payouts.values_list("out_request_no", flat=True)
        ]
        ids = set(obj.collections.values_list("txn_id", flat=True))
        txns = (
            LedgerTransaction.objects.filter(idempotency_key__in=keys)
            | LedgerTransaction.objects.filter(pk__in=ids)
        ).prefetch_related("postings__ledger_account")
        return (
            format_html_join(
                "",
                "<p>#{} {} {}: {}</p>",
                (
                    (
                        t.pk,
                        t.get_kind_display(),
                        t.created_at.strftime("%Y-%m-%d %H:%M"),
                        "; ".join(
                            f"{p.bucket} {from_micro(p.amount_micro).amount:+.2f}"
                            for p in t.postings.all()
                        ),
                    )
                    for t in txns.order_by("pk")
                ),
            )
            or "—"
        )

    @admin.display(description=_("Attach a file"))
    def proof_link(self, obj):
        if not obj.is_holding:
            return "—"
        url = reverse("admin:disputes_dispute_proof", args=[obj.pk])
        what = "evidence received for the user" if obj.state == "open" else "proof of a waiver"
        return format_html('<a href="{}">Attach {} (encrypted)</a>', url, what)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        opts = self.model._meta
        if opts.model_name != "dispute":
            return super().get_urls()
        return [
            path("open/", wrap(self.open_view), name="disputes_dispute_open"),
            path("<int:pk>/proof/", wrap(self.proof_view), name="disputes_dispute_proof"),
            path(
                "<int:pk>/file/<int:file_id>/", wrap(self.file_view), name="disputes_dispute_file"
            ),
            *super().get_urls(),
        ]

    def open_view(self, request):
        """CS open a dispute: the service checks the top-ups, the amount and the rights."""
        if not request.user.has_perm("disputes.open_dispute"):
            raise PermissionDenied
        initial, paid = self._open_initial(request)
        form = OpenDisputeForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            from topups.models import TopUp

            data = dict(form.cleaned_data)
            numbers = [n.strip() for n in data.pop("topups").split(",") if n.strip()]
            ids = list(TopUp.objects.filter(out_trade_no__in=numbers).values_list("pk", flat=True))
            if len(ids) != len(set(numbers)):
                form.add_error("topups", "An order number is unknown.")
            else:
                try:
                    dispute = open_dispute(ids, actor=request.user, **data)
                except (ValidationError, PermissionDenied) as exc:
                    for message in getattr(exc, "messages", [str(exc)]):
                        form.add_error(None, message)
                else:
                    self.message_user(
                        request,
                        _("Dispute #%(id)s opened; the account is locked.") % {"id": dispute.pk},
                    )
                    return redirect("admin:disputes_dispute_change", dispute.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Open a third-party dispute"),
            "form": form,
            "paid_topups": paid,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/disputes/form.html", context)

    def _open_initial(self, request):
        """What the form starts with when CS come from a top-up (?topups=order number) or
        the customer page (?customer=user id: their paid top-ups are listed to pick)."""
        from topups.models import TopUp, TopUpState

        initial, paid = {}, []
        if request.GET.get("topups"):
            initial["topups"] = request.GET["topups"][:400]
        customer = request.GET.get("customer", "")
        if customer.isdigit():
            paid = list(
                TopUp.objects.filter(account__user_id=int(customer), state=TopUpState.PAID)
                .order_by("-paid_at")
                .values_list("out_trade_no", "amount", "paid_at")[:20]
            )
            if len(paid) == 1:
                initial.setdefault("topups", paid[0][0])
        return initial, paid

    def proof_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        dispute = get_object_or_404(Dispute, pk=pk)
        form = ProofForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            attach = (
                add_evidence if form.cleaned_data["kind"] == FileKind.EVIDENCE else add_debt_proof
            )
            try:
                attach(
                    dispute,
                    form.cleaned_data["file"],
                    actor=request.user,
                    note=form.cleaned_data["note"],
                )
            except (ValidationError, PermissionDenied) as exc:
                for message in getattr(exc, "messages", [str(exc)]):
                    form.add_error(None, message)
            else:
                self.message_user(request, _("File attached (encrypted)."))
                return redirect("admin:disputes_dispute_change", dispute.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Attach a file to dispute #{dispute.pk}",
            "form": form,
            "opts": self.model._meta,
            "multipart": True,
        }
        return TemplateResponse(request, "admin/disputes/form.html", context)

    def file_view(self, request, pk, file_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        row = get_object_or_404(DisputeFile, pk=file_id, dispute_id=pk)
        try:
            data = read_file(row, actor=request.user)
        except PermissionDenied:
            self.message_user(
                request, _("Opening dispute files needs the permission."), messages.ERROR
            )
            return redirect("admin:disputes_dispute_change", pk)
        response = HttpResponse(data, content_type=row.content_type)
        response["Content-Disposition"] = f'inline; filename="dispute-{pk}-file-{row.pk}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response


@admin.register(Dispute)
class DisputeAdmin(_DisputeAdminBase):
    """The dispute queue: fewest days left first (open deadlines and debts' due dates)."""

    list_display = (
        "id",
        "user_email",
        "customer",
        "state",
        "days_left",
        "disputed",
        "evidence_count",
        "debt_left",
        "deadline_at",
        "debt_due_at",
        "opened_at",
    )
    list_filter = ("state", "reported_via", "topups__channel")

    def get_ordering(self, request):
        return (F("clock").asc(nulls_last=True), "id")

    def changelist_view(self, request, extra_context=None):
        extra = extra_context or {}
        if request.user.has_perm("disputes.open_dispute"):
            extra["open_url"] = reverse("admin:disputes_dispute_open")
        return super().changelist_view(request, extra_context=extra)


@admin.register(DisputeDebt)
class DisputeDebtAdmin(_DisputeAdminBase):
    """The debt queue: debts outstanding or escalated, by due date."""

    list_display = ("id", "user_email", "state", "debt_left", "debt_due_at", "days_left")
    list_filter = ("state",)
    ordering = ("debt_due_at", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state__in=DEBT_STATES)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # one case page, with the buttons of Dispute's transition map
        return redirect("admin:disputes_dispute_change", object_id)


@admin.register(RightsHolderPayout)
class RightsHolderPayoutAdmin(WorkflowAdminMixin, admin.ModelAdmin):
    """Money to rights holders: bank transfers wait for finance's button."""

    fsm_fields = ["state"]
    list_display = (
        "out_request_no",
        "dispute",
        "channel",
        "amount",
        "state",
        "attempts",
        "created_at",
        "paid_at",
    )
    list_filter = ("state", "channel")
    ordering = ("state", "created_at")
    search_fields = ("out_request_no", "=dispute__id")
    readonly_fields = (
        "dispute",
        "disputed_topup",
        "source",
        "amount",
        "channel",
        "out_request_no",
        "state",
        "reference",
        "attempts",
        "last_answer",
        "failure_reason",
        "created_at",
        "last_call_at",
        "paid_on",
        "paid_at",
        "paid_by",
    )
    fields = readonly_fields
    inlines = [AuditRecordInline]

    @admin.display(description=_("Amount"))
    def amount(self, obj):
        return _money(obj.amount_micro)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
