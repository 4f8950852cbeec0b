"""Ledger admin: read-only views of the books (money only moves through services)."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Sum
from django.template.response import TemplateResponse
from django.utils.html import format_html

from core.admin import AuditRecordInline
from core.forms import ReasonForm
from core.money import display

from .micro import from_micro
from .models import Charge, Grant, LedgerAccount, LedgerTransaction, Lot, Posting
from .services.ledger import void_grant
from .services.reconcile import reconcile, reconcile_all


def money_html(micro):
    """2 places half-up, the exact 6-place figure on hover (R-LED-3)."""
    exact = from_micro(micro).amount
    return format_html('<span title="{} CNY">{}</span>', exact, display(exact))


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is written by services only; admin shows, filters and reconciles."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AccountColumns:
    """Columns shared by the ledger lists: the owner's email and the cached remaining."""

    @admin.display(description="User", ordering="account__user__email")
    def account_email(self, obj):
        return obj.account.user.email if obj.account_id else "—"

    @admin.display(description="Remaining", ordering="remaining_micro")
    def remaining_exact(self, obj):
        return money_html(obj.remaining_micro)


class PostingInline(admin.TabularInline):
    model = Posting
    extra = 0
    can_delete = False
    fields = ("ledger_account", "bucket", "lot", "grant", "amount_exact")
    readonly_fields = fields
    ordering = ("id",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("ledger_account")

    @admin.display(description="Amount")
    def amount_exact(self, obj):
        return money_html(obj.amount_micro)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(AccountColumns, ReadOnlyAdmin):
    list_display = ("id", "created_at", "kind", "account_email", "idempotency_key", "memo")
    list_filter = ("kind",)
    search_fields = ("=id", "idempotency_key", "account__user__email", "memo")
    list_select_related = ("account__user",)
    date_hierarchy = "created_at"
    inlines = [PostingInline, AuditRecordInline]
    fields = ("kind", "account", "idempotency_key", "reverses", "memo", "actor", "created_at")
    readonly_fields = fields
    show_full_result_count = False  # counting a large ledger on every page is costly


@admin.action(
    description="Reconcile the ledger of the selected accounts (cache == postings)",
    permissions=["reconcile"],  # offered only to holders of billing.reconcile_ledger
)
def reconcile_selected(modeladmin, request, queryset):
    if not request.user.has_perm("billing.reconcile_ledger"):
        raise PermissionDenied
    owners = sorted({o for o in queryset.values_list("owner_id", flat=True) if o})
    if not owners:
        report = reconcile_all()
        reports = [report]
    else:
        reports = [reconcile(owner) for owner in owners]
    bad = [r for r in reports if not r.ok]
    if bad:
        for report in bad:
            modeladmin.message_user(request, report.summary(), messages.ERROR)
    else:
        scope = f"{len(owners)} account(s)" if owners else "the whole ledger"
        modeladmin.message_user(request, f"Reconciled {scope}: no drift.", messages.SUCCESS)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "channel", "owner_email", "cached_balance")
    list_filter = ("kind", ("owner", admin.EmptyFieldListFilter))
    search_fields = ("=id", "owner__user__email")
    list_select_related = ("owner__user",)
    actions = [reconcile_selected]
    fields = ("kind", "channel", "owner", "cached_balance", "ledger_balance")
    readonly_fields = fields

    def has_reconcile_permission(self, request):
        return request.user.has_perm("billing.reconcile_ledger")

    @admin.display(description="User", ordering="owner__user__email")
    def owner_email(self, obj):
        return obj.owner.user.email if obj.owner_id else "— platform —"

    @admin.display(description="Cached balance")
    def cached_balance(self, obj):
        if obj.owner_id is None:
            return "not cached (summed from postings)"
        return money_html(obj.balance_micro)

    @admin.display(description="Sum of postings")
    def ledger_balance(self, obj):
        total = obj.postings.aggregate(total=Sum("amount_micro"))["total"] or 0
        return money_html(total)


@admin.register(Lot)
class LotAdmin(AccountColumns, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "account_email",
        "channel",
        "amount",
        "remaining_exact",
        "held_exact",
        "third_party",
        "closed_at",
    )
    list_filter = ("channel", "third_party", ("closed_at", admin.EmptyFieldListFilter))
    search_fields = ("=id", "idempotency_key", "account__user__email", "payer_account")
    list_select_related = ("account__user",)
    date_hierarchy = "created_at"
    fields = (
        "account",
        "channel",
        "amount",
        "remaining_exact",
        "held_exact",
        "payer_name",
        "payer_account",
        "third_party",
        "idempotency_key",
        "memo",
        "created_at",
        "closed_at",
    )
    readonly_fields = fields

    @admin.display(description="On hold", ordering="held_micro")
    def held_exact(self, obj):
        return money_html(obj.held_micro)


@admin.action(description="Void the selected grants (asks for a reason)")
def void_selected(modeladmin, request, queryset):
    """Staff take back unused free funds through the service (audited, idempotent)."""
    if not request.user.has_perm("billing.void_grant"):
        raise PermissionDenied
    form = ReasonForm(request.POST if request.POST.get("confirm") else None)
    if form.is_bound and form.is_valid():
        done = 0
        for grant in queryset:
            try:
                void_grant(grant, reason=form.cleaned_data["reason"], actor=request.user)
                done += 1
            except ValidationError as exc:
                modeladmin.message_user(
                    request, f"{grant}: {'; '.join(exc.messages)}", messages.ERROR
                )
        modeladmin.message_user(request, f"Voided {done} grant(s).", messages.SUCCESS)
        return None
    return TemplateResponse(
        request,
        "admin/billing/grant/void_confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "grants": queryset.select_related("account__user"),
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
            "title": "Void grants",
        },
    )


@admin.register(Grant)
class GrantAdmin(AccountColumns, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "account_email",
        "kind",
        "amount",
        "remaining_exact",
        "expires_at",
        "state",
    )
    list_filter = ("kind", "state")
    actions = [void_selected]
    search_fields = ("=id", "idempotency_key", "account__user__email")
    list_select_related = ("account__user",)
    date_hierarchy = "created_at"
    inlines = [AuditRecordInline]
    fields = (
        "account",
        "kind",
        "amount",
        "remaining_exact",
        "expires_at",
        "state",
        "source_lot",
        "idempotency_key",
        "memo",
        "created_at",
        "ended_at",
    )
    readonly_fields = fields


@admin.register(Charge)
class ChargeAdmin(AccountColumns, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "request_id",
        "account_email",
        "model",
        "amount_exact",
        "arrears_exact",
    )
    list_filter = ("model",)
    search_fields = ("=request_id", "account__user__email")
    list_select_related = ("account__user",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "request_id",
        "account",
        "api_key",
        "model",
        "amount_exact",
        "trial_exact",
        "discount_exact",
        "cash_exact",
        "arrears_exact",
        "split",
        "transaction",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Amount", ordering="amount_micro")
    def amount_exact(self, obj):
        return money_html(obj.amount_micro)

    @admin.display(description="Arrears")
    def arrears_exact(self, obj):
        return money_html(obj.arrears_micro)

    @admin.display(description="From trial")
    def trial_exact(self, obj):
        return money_html(obj.trial_micro)

    @admin.display(description="From discount")
    def discount_exact(self, obj):
        return money_html(obj.discount_micro)

    @admin.display(description="From cash")
    def cash_exact(self, obj):
        return money_html(obj.cash_micro)
