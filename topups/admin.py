from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.selectors import user_by_email
from billing.models import Channel
from core.admin import AuditRecordInline, CustomerLinkMixin, WorkflowAdminMixin, customer_url
from core.admin_paging import LargeTableAdminMixin

from . import selectors
from .forms import (
    EndPromotionForm,
    GrantValidityForm,
    ManualTopUpForm,
    StatementUploadForm,
)
from .models import (
    GrantValidity,
    Promotion,
    PromotionRedemption,
    TopUp,
    TopUpState,
    TrialAward,
    TrialSettings,
)
from .services.preconditions import FINANCE_PERM
from .services.promotions import save_promotion
from .services.remittances import record_manual_topup
from .services.statements import import_bank_statement
from .services.trials import change_grant_validity, save_trial_settings


class ReasonedChangeForm(forms.ModelForm):
    """A money-relevant setting changes only with a reason, kept in its audit (R-ADM-5)."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        help_text=_("Why this change: kept in the history with the old and new values."),
    )


class ReasonedChangeAdminMixin:
    """Admin saves go through the app's audited service (bounds, reason, old → new)."""

    form = ReasonedChangeForm
    save_service = None

    def save_model(self, request, obj, form, change):
        type(self).save_service(obj, actor=request.user, reason=form.cleaned_data["reason"])


PROMOTION_MONEY = ("min_topup", "benefit_amount", "benefit_cap")


def _money_or_dash(value):
    from core.money import yuan

    amount = getattr(value, "amount", value)
    return "—" if amount is None else yuan(amount)


@admin.register(TopUp)
class TopUpAdmin(CustomerLinkMixin, LargeTableAdminMixin, WorkflowAdminMixin, admin.ModelAdmin):
    """Top-up cases: finance confirms bank remittances here (button "Confirm remittance")."""

    customer_user_path = "account__user_id"

    fsm_fields = ["state"]
    four_eyes = {"approve_credit": ("proposed_by_id",)}  # a second finance approver
    list_display = (
        "out_trade_no",
        "user_email",
        "customer",
        "channel",
        "amount",
        "state",
        "third_party",
        "remittance_reference",
        "created_at",
        "paid_at",
    )
    list_filter = ("channel", "state", "third_party")
    date_hierarchy = "created_at"
    search_fields = ("out_trade_no", "trade_no", "remittance_reference", "account__user__email")
    search_help_text = _("An email, an order number, a trade number or a remittance reference.")
    list_select_related = ("account__user",)
    inlines = [AuditRecordInline]
    change_list_template = "admin/topups/topup/change_list.html"
    readonly_fields = (
        "account",
        "customer",
        "channel",
        "amount",
        "state",
        "out_trade_no",
        "remittance_reference",
        "trade_no",
        "channel_status",
        "received",
        "payer_name",
        "payer_account",
        "third_party",
        "lot",
        "acceptance",
        "created_at",
        "expires_at",
        "paid_at",
        "closed_at",
        "created_by",
        "proposed_by",
        "proposed_at",
        "approved_by",
        "memo",
    )
    fields = readonly_fields

    @admin.display(description=_("User"), ordering="account__user__email")
    def user_email(self, obj):
        return obj.account.user.email

    @admin.display(description=TopUp._meta.get_field("received_amount").verbose_name)
    def received(self, obj):
        """djmoney shows an empty amount as "None": staff read a dash, or ¥ figures."""
        from core.money import yuan

        return "—" if obj.received_amount is None else yuan(obj.received_amount)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields

    def get_search_results(self, request, queryset, search_term):
        """One indexed match, not a LIKE '%…%' over every top-up: an email (any case)
        finds the owner's top-ups; anything else is an order number, an Alipay or bank
        trade number or a remittance reference, exactly. (A part of an email: the
        customer search on the workbench.)"""
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(account__user__email__iexact=term), False
        match = (
            Q(out_trade_no=term)
            | Q(channel__in=Channel.values, trade_no=term)
            | Q(remittance_reference=term)
        )
        return queryset.filter(match), False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A paid top-up offers CS "Open a dispute" (R-DIS-1), prefilled with its order
        number; disputes is a higher app, so the link goes by URL name."""
        extra = dict(extra_context or {})
        topup = self.get_object(request, object_id)
        links = []
        if topup is not None:
            links.append(
                {"label": gettext("Customer view"), "url": customer_url(topup.account.user_id)}
            )
            if topup.state == TopUpState.PAID and request.user.has_perm("disputes.open_dispute"):
                url = (
                    reverse("admin:disputes_dispute_open")
                    + "?"
                    + urlencode({"topups": topup.out_trade_no, "customer": topup.account.user_id})
                )
                links.append({"label": gettext("Open a dispute"), "url": url})
        extra["workflow_links"] = links
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def get_urls(self):
        return [
            path(
                "import-statement/",
                self.admin_site.admin_view(self.import_statement_view),
                name="topups_topup_import_statement",
            ),
            path(
                "record-manual/",
                self.admin_site.admin_view(self.record_manual_view),
                name="topups_topup_record_manual",
            ),
            *super().get_urls(),
        ]

    def import_statement_view(self, request):
        """Upload a bank statement CSV; every row must match or nothing is applied."""
        if not request.user.has_perm(FINANCE_PERM):
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            raw = form.cleaned_data["statement"].read()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                form.add_error("statement", "The file is not UTF-8 text.")
            else:
                report = import_bank_statement(text, actor=request.user)
                if not report.errors:
                    done, review = len(report.confirmed), len(report.reviewed)
                    waiting = len(report.awaiting_approval)
                    self.message_user(
                        request,
                        _(
                            "Confirmed %(done)s, sent to review %(review)s, "
                            "awaiting a second approver %(waiting)s."
                        )
                        % {"done": done, "review": review, "waiting": waiting},
                    )
                    return redirect("admin:topups_topup_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "title": _("Import bank statement"),
        }
        return render(request, "admin/topups/topup/import_statement.html", context)

    def record_manual_view(self, request):
        """Record a payment received by another route; the usual preconditions apply."""
        if not request.user.has_perm(FINANCE_PERM):
            raise PermissionDenied
        form = ManualTopUpForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            user = user_by_email(data["email"])
            if user is None:
                form.add_error("email", "No user with this email.")
            else:
                try:
                    topup = record_manual_topup(
                        user,
                        data["amount"],
                        actor=request.user,
                        payer_name=data["payer_name"],
                        payer_account=data["payer_account"],
                        reference=data["reference"],
                        reason=data["reason"],
                    )
                except ValidationError as exc:
                    form.add_error(None, exc)
                else:
                    self.message_user(
                        request,
                        _(
                            "Recorded top-up %(number)s; it is credited when a second "
                            "finance approver approves it."
                        )
                        % {"number": topup.out_trade_no},
                    )
                    return redirect("admin:topups_topup_change", topup.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Record a manual payment"),
        }
        return render(request, "admin/topups/topup/record_manual.html", context)


class PromotionForm(ReasonedChangeForm):
    """Amounts and the percent as plain numbers, as the gateway takes them (issue 24:
    `1e2` is refused, not read as 100): core.money's plain-decimal rule on the raw input."""

    PLAIN = {
        "benefit_amount": "benefit_amount_0",
        "benefit_cap": "benefit_cap_0",
        "min_topup": "min_topup_0",
        "benefit_percent": "benefit_percent",
    }

    def clean(self):
        from core.money import is_plain_decimal

        cleaned = super().clean()
        for field, key in self.PLAIN.items():
            raw = self.data.get(self.add_prefix(key))
            if field in self.fields and raw not in (None, "") and not is_plain_decimal(raw):
                self.add_error(
                    field,
                    ValidationError(
                        _("Write the amount as a plain number, e.g. 100 or 99.50."),
                        code="invalid_amount",
                    ),
                )
        return cleaned


@admin.register(Promotion)
class PromotionAdmin(ReasonedChangeAdminMixin, WorkflowAdminMixin, admin.ModelAdmin):
    fsm_fields = ["state"]
    save_service = save_promotion
    form = PromotionForm
    list_display = (
        "name",
        "kind",
        "state",
        "starts_at",
        "ends_at",
        "priority",
        "benefit",
        "quantity",
        "redemptions",
        "voided",
    )
    list_filter = ("kind", "state", "account_kind", "new_customers_only")
    search_fields = ("name",)
    date_hierarchy = "starts_at"
    readonly_fields = ("state", "used_quantity", "created_at", "ended_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "state", "priority")}),
        (_("Window"), {"fields": ("starts_at", "ends_at", "ended_at")}),
        (_("Eligibility"), {"fields": ("new_customers_only", "account_kind", "min_topup")}),
        (_("Quantity"), {"fields": ("total_quantity", "used_quantity", "per_user_limit")}),
        (
            _("Benefit"),
            {
                "fields": (
                    "benefit_type",
                    "benefit_amount",
                    "benefit_percent",
                    "benefit_cap",
                    "bonus_validity_days",
                )
            },
        ),
        (_("Why"), {"fields": ("reason",)}),
    )
    inlines = [AuditRecordInline]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # Read only (CS, auditor): money as ¥ or a dash, and no reason box (issue 21).
        shown = []
        for name, options in fieldsets:
            if tuple(options["fields"]) == ("reason",):
                continue
            fields = [f"{f}_shown" if f in PROMOTION_MONEY else f for f in options["fields"]]
            shown.append((name, {**options, "fields": fields}))
        return shown

    @admin.display(description=Promotion._meta.get_field("min_topup").verbose_name)
    def min_topup_shown(self, obj):
        return _money_or_dash(obj.min_topup)

    @admin.display(description=Promotion._meta.get_field("benefit_amount").verbose_name)
    def benefit_amount_shown(self, obj):
        return _money_or_dash(obj.benefit_amount)

    @admin.display(description=Promotion._meta.get_field("benefit_cap").verbose_name)
    def benefit_cap_shown(self, obj):
        return _money_or_dash(obj.benefit_cap)

    def get_queryset(self, request):
        return selectors.promotions_with_counts()

    def get_fsm_transition_form(self, transition):
        if transition.name == "end":
            return EndPromotionForm
        return super().get_fsm_transition_form(transition)

    def is_fsm_transition_visible(self, transition):
        return True

    @admin.display(description=_("Benefit"))
    def benefit(self, obj):
        if obj.benefit_type == "fixed":
            return f"{obj.benefit_amount}"
        return _("%(percent)s%% (cap %(cap)s)") % {
            "percent": obj.benefit_percent,
            "cap": obj.benefit_cap,
        }

    @admin.display(description=_("Used / total"))
    def quantity(self, obj):
        return f"{obj.used_quantity} / {obj.total_quantity or '∞'}"

    @admin.display(description=_("Redemptions"), ordering="redemption_count")
    def redemptions(self, obj):
        return obj.redemption_count

    @admin.display(description=_("Voided"))
    def voided(self, obj):
        return obj.voided_count

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PromotionRedemption)
class PromotionRedemptionAdmin(admin.ModelAdmin):
    list_display = ("promotion", "account", "topup", "amount", "created_at", "voided_at")
    list_filter = ("promotion",)
    search_fields = ("topup__out_trade_no", "account__user__email")
    list_select_related = ("promotion", "account__user", "topup")
    date_hierarchy = "created_at"
    readonly_fields = (
        "promotion",
        "account",
        "topup",
        "amount",
        "grant",
        "created_at",
        "voided_at",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TrialSettings)
class TrialSettingsAdmin(ReasonedChangeAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "enabled", "amount", "validity_days", "updated_at")
    fields = ("enabled", "amount", "validity_days", "reason")
    inlines = [AuditRecordInline]
    save_service = save_trial_settings

    def has_add_permission(self, request):
        return not TrialSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        obj = TrialSettings.load()
        return redirect("admin:topups_trialsettings_change", obj.pk)


@admin.register(TrialAward)
class TrialAwardAdmin(admin.ModelAdmin):
    list_display = ("account", "amount", "grant_link", "created_at")
    search_fields = ("account__user__email",)
    list_select_related = ("account__user", "grant")
    date_hierarchy = "created_at"
    readonly_fields = ("identity_hash", "account", "amount", "grant", "created_at")

    @admin.display(description=_("Grant"))
    def grant_link(self, obj):
        if not obj.grant_id:
            return "-"
        url = reverse("admin:topups_grantvalidity_change", args=[obj.grant_id])
        return format_html('<a href="{}">{} (change validity)</a>', url, obj.grant_id)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GrantValidity)
class GrantValidityAdmin(admin.ModelAdmin):
    """Ledger grants as staff see them to extend or shorten validity (R-TOP-5)."""

    list_display = (
        "id",
        "account",
        "kind",
        "state",
        "amount_display",
        "remaining_display",
        "expires_at",
    )
    list_filter = ("kind", "state")
    search_fields = ("account__user__email",)
    list_select_related = ("account__user",)
    date_hierarchy = "created_at"

    @admin.display(description=_("Amount"))
    def amount_display(self, obj):
        return obj.amount

    @admin.display(description=_("Remaining"))
    def remaining_display(self, obj):
        return obj.remaining

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("topups.change_grant_validity")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        grant = get_object_or_404(self.model.objects.select_related("account__user"), pk=object_id)
        if not self.has_view_permission(request, grant):
            raise PermissionDenied
        form = GrantValidityForm(request.POST or None, initial={"expires_at": grant.expires_at})
        if request.method == "POST" and form.is_valid():
            try:
                change_grant_validity(
                    grant,
                    form.cleaned_data["expires_at"],
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except PermissionDenied as exc:
                messages.error(request, str(exc) or _("You may not do this."))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("The grant's validity is changed."))
                return redirect("admin:topups_grantvalidity_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": grant,
            "form": form,
            "history": selectors.grant_history(grant),
            "title": _("Change the validity of grant #%(id)s") % {"id": grant.pk},
        }
        return render(request, "admin/topups/grantvalidity/change.html", context)
