"""Ledger admin: read-only views of the books (money only moves through services)."""

import time
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, Sum
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from core.admin import AuditRecordInline, CustomerLinkMixin
from core.admin_paging import LargeTableAdminMixin
from core.forms import ReasonForm
from core.money import yuan

from .micro import from_micro
from .models import (
    Grant,
    LedgerAccount,
    LedgerTransaction,
    Lot,
    PackageHolding,
    Posting,
    ResourcePackage,
    SpendLimit,
    UsageEvent,
)
from .services.ledger import void_grant
from .services.reconcile import reconcile, reconcile_all
from .services.usage_credits import PERMISSION as CREDIT_PERMISSION
from .services.usage_credits import credit_back_usage, credit_for


def money_html(micro):
    """2 places half-up, the exact 6-place figure on hover (R-LED-3)."""
    exact = from_micro(micro).amount
    return format_html('<span title="{} CNY">{}</span>', exact, yuan(exact))


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is written by services only; admin shows, filters and reconciles."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def admin_link(model, pk, text):
    """A link to one row's admin page, built from its id alone (no query)."""
    if pk is None:
        return "—"
    url = reverse(f"admin:billing_{model}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, text)


def postings_link(lookup, pk):
    """The posting list filtered to one transaction, account, lot or grant."""
    url = reverse("admin:billing_posting_changelist") + f"?{lookup}__id__exact={pk}"
    return format_html('<a href="{}">{}</a>', url, gettext("Postings"))


class AccountSearch:
    """Search a large ledger table with one indexed predicate, chosen by the term's shape.

    Django's default search ORs every search field into one WHERE, across joins; no
    index serves that, and on millions of rows the newest-first page walks the whole
    table when nothing matches. Here an email finds the owner first (the small users
    table), then the rows by the owner's index; a number is a row id; anything else is
    matched exactly against `key_fields` (the table's unique key)."""

    account_field = "account_id"
    key_fields = ()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            from django.apps import apps

            balance_account = apps.get_model("accounts", "BalanceAccount")
            owners = list(
                balance_account.objects.filter(user__email__iexact=term).values_list(
                    "id", flat=True
                )
            )
            return queryset.filter(**{f"{self.account_field}__in": owners}), False
        match = Q(pk=None)
        for field in self.key_fields:
            match |= Q(**{field: term})
        if term.isdigit():
            match |= Q(pk=int(term))
        return queryset.filter(match), False


class AccountColumns:
    """Columns shared by the ledger lists: the owner's email and the cached remaining."""

    @admin.display(description=_("User"), ordering="account__user__email")
    def account_email(self, obj):
        return obj.account.user.email if obj.account_id else "—"

    @admin.display(description=_("Remaining"), ordering="remaining_micro")
    def remaining_exact(self, obj):
        return money_html(obj.remaining_micro)

    @admin.display(description=_("Amount"), ordering="amount")
    def amount_shown(self, obj):
        """Like money_html, from the Money field (djmoney's own column formats with babel,
        ~1 ms a row)."""
        exact = obj.amount.amount
        return format_html('<span title="{} CNY">{}</span>', exact, yuan(exact))


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

    @admin.display(description=_("Amount"))
    def amount_exact(self, obj):
        return money_html(obj.amount_micro)


@admin.register(Posting)
class PostingAdmin(LargeTableAdminMixin, ReadOnlyAdmin):
    """Every posting, newest first; append-only (R-LED-2), so read-only here too.

    Filtered from the transaction, account, lot and grant pages by their id
    (`?ledger_account__id__exact=…`): each of those columns has an index."""

    list_display = (
        "id",
        "transaction_link",
        "ledger_account",
        "bucket",
        "lot_link",
        "grant_link",
        "amount_exact",
    )
    # no filter by bucket: a rare bucket would walk every posting (no index serves it);
    # the account, transaction, lot and grant pages link their postings instead
    list_select_related = ("ledger_account",)
    ordering = ("-id",)
    sortable_by = ("id",)
    fields = ("transaction", "ledger_account", "bucket", "lot", "grant", "amount_exact")
    readonly_fields = fields

    @admin.display(description=_("Transaction"))
    def transaction_link(self, obj):
        return admin_link("ledgertransaction", obj.transaction_id, f"#{obj.transaction_id}")

    @admin.display(description=_("Lot"))
    def lot_link(self, obj):
        return admin_link("lot", obj.lot_id, f"#{obj.lot_id}")

    @admin.display(description=_("Grant"))
    def grant_link(self, obj):
        return admin_link("grant", obj.grant_id, f"#{obj.grant_id}")

    @admin.display(description=_("Amount"), ordering="amount_micro")
    def amount_exact(self, obj):
        return money_html(obj.amount_micro)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(LargeTableAdminMixin, AccountSearch, AccountColumns, ReadOnlyAdmin):
    """Millions of rows: newest first by primary key, sortable by id only, no count of
    the table (core.admin_paging), search by email, id or idempotency key."""

    list_display = ("id", "created_at", "kind", "account_email", "idempotency_key", "memo")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("idempotency_key",)  # shows the box; AccountSearch does the work
    search_help_text = _("An email, a transaction id or an idempotency key.")
    key_fields = ("idempotency_key",)
    list_select_related = ("account__user",)
    ordering = ("-id",)
    sortable_by = ("id",)
    inlines = [PostingInline, AuditRecordInline]
    fields = (
        "kind",
        "account",
        "idempotency_key",
        "reverses",
        "memo",
        "actor",
        "created_at",
        "posting_list",
        "event_list",
    )
    readonly_fields = fields

    @admin.display(description=_("Posting list"))
    def posting_list(self, obj):
        return postings_link("transaction", obj.pk)

    @admin.display(description=_("Usage events"))
    def event_list(self, obj):
        """A usage transaction settles many events (one per account per settler chunk):
        the event list filtered to it (UsageEvent.transaction is indexed)."""
        if obj.kind != "usage":
            return "—"
        url = reverse("admin:billing_usageevent_changelist") + f"?transaction__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("Events settled here"))


@admin.action(
    description=_("Reconcile the ledger of the selected accounts (cache == postings)"),
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
        modeladmin.message_user(
            request, _("Reconciled %(scope)s: no drift.") % {"scope": scope}, messages.SUCCESS
        )


@admin.register(LedgerAccount)
class LedgerAccountAdmin(LargeTableAdminMixin, AccountSearch, ReadOnlyAdmin):  # six per user
    list_display = ("id", "kind", "channel", "owner_email", "cached_balance")
    list_filter = ("kind", ("owner", admin.EmptyFieldListFilter))
    search_fields = ("=id",)  # shows the box; AccountSearch does the work
    search_help_text = _("An email or a ledger account id.")
    account_field = "owner_id"
    list_select_related = ("owner__user",)
    actions = [reconcile_selected]
    fields = ("kind", "channel", "owner", "cached_balance", "ledger_balance", "posting_list")
    readonly_fields = fields

    def has_reconcile_permission(self, request):
        return request.user.has_perm("billing.reconcile_ledger")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/sum/",
                self.admin_site.admin_view(self.sum_view),
                name="billing_ledgeraccount_sum",
            ),
            *super().get_urls(),
        ]

    def sum_view(self, request, object_id):
        """The exact sum of an account's postings, computed only when staff ask for it.

        A platform account (revenue, clearing …) is not cached and collects a posting
        from every charge: summing millions of rows on each view of its page would
        cost seconds, so the page offers this link instead (billing/README.md)."""
        account = self.get_object(request, object_id)
        if account is None or not self.has_view_permission(request, account):
            raise Http404
        t0 = time.perf_counter()
        total = account.postings.aggregate(total=Sum("amount_micro"))["total"] or 0
        took = time.perf_counter() - t0
        exact = from_micro(total).amount
        self.message_user(
            request,
            gettext("Sum of the postings of %(account)s: %(total)s CNY (read in %(ms)d ms).")
            % {"account": account, "total": exact, "ms": took * 1000},
            messages.SUCCESS,
        )
        return redirect(reverse("admin:billing_ledgeraccount_change", args=[account.pk]))

    @admin.display(description=_("User"), ordering="owner__user__email")
    def owner_email(self, obj):
        return obj.owner.user.email if obj.owner_id else _("— platform —")

    @admin.display(description=_("Cached balance"))
    def cached_balance(self, obj):
        if obj.owner_id is None:
            return _("not cached (summed from postings)")
        return money_html(obj.balance_micro)

    @admin.display(description=_("Sum of postings"))
    def ledger_balance(self, obj):
        """On request only: the sum reads every posting of the account (see sum_view)."""
        url = reverse("admin:billing_ledgeraccount_sum", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Compute the exact sum"))

    @admin.display(description=_("Posting list"))
    def posting_list(self, obj):
        return postings_link("ledger_account", obj.pk)


@admin.register(Lot)
class LotAdmin(
    CustomerLinkMixin, LargeTableAdminMixin, AccountSearch, AccountColumns, ReadOnlyAdmin
):
    customer_user_path = "account__user_id"
    list_display = (
        "id",
        "created_at",
        "account_email",
        "customer",
        "channel",
        "amount_shown",
        "remaining_exact",
        "held_exact",
        "third_party",
        "closed_at",
    )
    list_filter = (
        "channel",
        "third_party",
        ("closed_at", admin.EmptyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=id",)  # shows the box; AccountSearch does the work
    search_help_text = _("An email, a lot id or an idempotency key.")
    key_fields = ("idempotency_key",)  # the payer is encrypted at rest: not searchable
    list_select_related = ("account__user",)
    ordering = ("-id",)
    fields = (
        "account",
        "customer",
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
        "posting_list",
    )
    readonly_fields = fields

    @admin.display(description=_("On hold"), ordering="held_micro")
    def held_exact(self, obj):
        return money_html(obj.held_micro)

    @admin.display(description=_("Posting list"))
    def posting_list(self, obj):
        return postings_link("lot", obj.pk)


@admin.action(description=_("Void the selected grants (asks for a reason)"))
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
        modeladmin.message_user(
            request, _("Voided %(count)s grant(s).") % {"count": done}, messages.SUCCESS
        )
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
            "title": _("Void grants"),
        },
    )


@admin.register(Grant)
class GrantAdmin(LargeTableAdminMixin, AccountSearch, AccountColumns, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "account_email",
        "kind",
        "amount_shown",
        "remaining_exact",
        "expires_at",
        "state",
    )
    list_filter = ("kind", "state", ("created_at", admin.DateFieldListFilter))
    actions = [void_selected]
    search_fields = ("=id",)  # shows the box; AccountSearch does the work
    search_help_text = _("An email, a grant id or an idempotency key.")
    key_fields = ("idempotency_key",)
    list_select_related = ("account__user",)
    ordering = ("-id",)
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
        "posting_list",
    )
    readonly_fields = fields

    @admin.display(description=_("Posting list"))
    def posting_list(self, obj):
        return postings_link("grant", obj.pk)


class RecentModelFilter(admin.SimpleListFilter):
    """Filter by model, offering the models of the latest usage events only.

    `list_filter = ("model",)` would offer every value with a SELECT DISTINCT over all
    events (a scan of the whole table on every page view); the latest 1,000 events
    are read through the primary key instead. A model not charged lately can still be
    filtered with ?model=… in the address."""

    title = _("model")
    parameter_name = "model"
    recent = 1_000

    def lookups(self, request, model_admin):
        latest = UsageEvent.objects.order_by("-id").values("model")[: self.recent]
        names = sorted({row["model"] for row in latest})
        current = self.value()
        if current and current not in names:
            names.append(current)
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(model=self.value())
        return queryset


class SettlementStateFilter(admin.SimpleListFilter):
    """Pending or settled (R-USE-5). Pending is `transaction IS NULL`, exactly the
    condition of the partial index billing_charge_pending: the newest-first page of
    pending events walks that small index, never the settled history."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", _("Pending")), ("settled", _("Settled"))]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(transaction__isnull=True)
        if self.value() == "settled":
            return queryset.filter(transaction__isnull=False)
        return queryset


def split_html(split):
    """Each grant and lot that paid an event, linked to its admin page, with its part."""
    if not split:
        return "—"
    names = {
        "trial": gettext("Trial funds"),
        "discount": gettext("Discount"),
        "cash": gettext("Cash"),
        "arrears": gettext("Arrears"),
    }
    parts = []
    for item in split:
        if item.get("lot"):
            source = admin_link("lot", item["lot"], gettext("lot #%(id)s") % {"id": item["lot"]})
        elif item.get("grant"):
            source = admin_link(
                "grant", item["grant"], gettext("grant #%(id)s") % {"id": item["grant"]}
            )
        else:
            source = ""
        amount = Decimal(item["amount"])
        parts.append(
            format_html(
                '<li>{} {} <span title="{} CNY">{}</span></li>',
                names.get(item["bucket"], item["bucket"]),
                source,
                amount,
                yuan(amount),
            )
        )
    return format_html("<ul>{}</ul>", format_html_join("", "{}", ((p,) for p in parts)))


RUN_NOW_SECONDS = 10


@admin.register(UsageEvent)
class UsageEventAdmin(LargeTableAdminMixin, AccountSearch, AccountColumns, ReadOnlyAdmin):
    """One row per usage event (R-USE-1, R-USE-5): pending until the settler gives it its
    parts, split and ledger transaction. The list shows the pending backlog and, to
    holders of billing.settle_usage, a Run-now that settles it at once; the page of a
    settled event offers holders of billing.credit_back_usage a credit-back."""

    list_display = (
        "id",
        "created_at",
        "request_id",
        "account_email",
        "model",
        "amount_exact",
        "state_shown",
        "arrears_exact",
    )
    list_filter = (
        SettlementStateFilter,
        RecentModelFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("request_id",)  # shows the box; AccountSearch does the work
    search_help_text = _("An email, a request id or a charge id.")
    key_fields = ("request_id",)
    list_select_related = ("account__user",)
    ordering = ("-id",)
    sortable_by = ("id",)
    change_list_template = "admin/billing/usageevent/change_list.html"
    change_form_template = "admin/billing/usageevent/change_form.html"
    inlines = [AuditRecordInline]
    fields = (
        "request_id",
        "account",
        "api_key",
        "model",
        "amount_exact",
        "state_shown",
        "occurred_at",
        "created_at",
        "settled_at",
        "trial_exact",
        "discount_exact",
        "cash_exact",
        "arrears_exact",
        "paid_by",
        "transaction_link",
        "credit_link",
    )
    readonly_fields = fields

    def get_urls(self):
        return [
            path(
                "settle/",
                self.admin_site.admin_view(self.settle_view),
                name="billing_charge_settle",
            ),
            path(
                "<path:object_id>/credit-back/",
                self.admin_site.admin_view(self.credit_back_view),
                name="billing_charge_credit_back",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        from .selectors import pending_backlog

        extra = {
            # one bounded COUNT/SUM over the pending rows only (the partial index)
            "pending": pending_backlog(),
            "can_settle": request.user.has_perm("billing.settle_usage"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "can_credit_back": request.user.has_perm(CREDIT_PERMISSION),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    @method_decorator(require_POST)
    def settle_view(self, request):
        """Run-now: settle every pending event (run_settler with seconds=0 drains the
        backlog and stops). POST with the CSRF token; billing.settle_usage only."""
        from .services.settlement import run_settler

        if not request.user.has_perm("billing.settle_usage"):
            raise PermissionDenied
        # drain the backlog, but never hold the request longer than RUN_NOW_SECONDS: while
        # the gateway keeps sending, "until nothing is pending" might never come
        deadline = time.monotonic() + RUN_NOW_SECONDS
        settled = run_settler(seconds=0, stop=lambda: time.monotonic() > deadline)
        self.message_user(
            request,
            ngettext(
                "Settled %(count)d pending usage event.",
                "Settled %(count)d pending usage events.",
                settled,
            )
            % {"count": settled},
            messages.SUCCESS,
        )
        return redirect(reverse("admin:billing_usageevent_changelist"))

    def credit_back_view(self, request, object_id):
        """Credit back one settled event: a reason form, then the service (audited,
        keyed per event, R-ADM-2, R-LED-5)."""
        if not request.user.has_perm(CREDIT_PERMISSION):
            raise PermissionDenied
        charge = self.get_object(request, object_id)
        if charge is None:
            raise Http404
        page = reverse("admin:billing_usageevent_change", args=[charge.pk])
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                txn = credit_back_usage(
                    charge, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.ERROR)
                return redirect(page)
            if txn.replayed:
                text = gettext("This event was already credited back in transaction #%(txn)s.")
                level = messages.WARNING
            else:
                text = gettext("Credited back in transaction #%(txn)s.")
                level = messages.SUCCESS
            self.message_user(request, text % {"txn": txn.pk}, level)
            return redirect(page)
        return TemplateResponse(
            request,
            "admin/billing/usageevent/credit_back.html",
            {
                **self.admin_site.each_context(request),
                "charge": charge,
                "paid_by": split_html(charge.split),
                "credit": credit_for(charge),
                "form": form,
                "opts": self.model._meta,
                "title": gettext("Credit back usage event %(request)s")
                % {"request": charge.request_id},
            },
        )

    @admin.display(description=_("State"))
    def state_shown(self, obj):
        if obj.transaction_id is None:
            return format_html('<span class="usage-pending">{}</span>', gettext("Pending"))
        return format_html('<span class="usage-settled">{}</span>', gettext("Settled"))

    @admin.display(description=_("Paid by"))
    def paid_by(self, obj):
        return split_html(obj.split)

    @admin.display(description=_("Ledger transaction"))
    def transaction_link(self, obj):
        return admin_link("ledgertransaction", obj.transaction_id, f"#{obj.transaction_id}")

    @admin.display(description=_("Credited back"))
    def credit_link(self, obj):
        credit = credit_for(obj)
        if credit is None:
            return gettext("No")
        return admin_link("ledgertransaction", credit.pk, f"#{credit.pk}")

    @admin.display(description=_("Amount"), ordering="amount_micro")
    def amount_exact(self, obj):
        return money_html(obj.amount_micro)

    @admin.display(description=_("Arrears"))
    def arrears_exact(self, obj):
        return money_html(obj.arrears_micro)

    @admin.display(description=_("From trial"))
    def trial_exact(self, obj):
        return money_html(obj.trial_micro)

    @admin.display(description=_("From discount"))
    def discount_exact(self, obj):
        return money_html(obj.discount_micro)

    @admin.display(description=_("From cash"))
    def cash_exact(self, obj):
        return money_html(obj.cash_micro)


# ---------------------------------------------------------------- resource packages (issue 23)


class ResourcePackageForm(forms.ModelForm):
    """A catalogue change: face value typed in CNY, models one per line, and a reason
    kept in the audit with the old and new values (R-PKG-1, R-ADM-5)."""

    face_value = forms.DecimalField(
        label=_("Face value (CNY of usage)"), max_digits=14, decimal_places=6, min_value=0
    )
    models_text = forms.CharField(
        label=_("Models covered"), widget=forms.Textarea({"rows": 3}), help_text=_("One per line.")
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        help_text=_("Why this change: kept in the history with the old and new values."),
    )

    class Meta:
        model = ResourcePackage
        fields = (
            "name_zh",
            "name_en",
            "price",
            "validity_days",
            "sale_starts_at",
            "sale_ends_at",
            "per_user_limit",
            "active",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["face_value"].initial = from_micro(self.instance.face_micro).amount
            self.fields["models_text"].initial = "\n".join(self.instance.models_covered)

    def clean_face_value(self):
        value = self.cleaned_data["face_value"]
        if value <= 0:
            raise ValidationError(_("The face value must be greater than zero."))
        return value

    def clean(self):
        data = super().clean()
        self.instance.models_covered = [
            line.strip() for line in (data.get("models_text") or "").splitlines() if line.strip()
        ]
        if data.get("face_value") is not None:
            new_face = int(data["face_value"] * 1_000_000)
            if self.instance.pk:
                from django.utils import timezone

                current = ResourcePackage.objects.get(pk=self.instance.pk)
                if current.on_sale(timezone.now()) and (
                    new_face != current.face_micro or data.get("price") != current.price
                ):
                    raise ValidationError(
                        _(
                            "A package on sale cannot change its price or face value; "
                            "retire it and add a new one."
                        )
                    )
            self.instance.face_micro = new_face
        return data


@admin.register(ResourcePackage)
class ResourcePackageAdmin(admin.ModelAdmin):
    """The catalogue (R-PKG-1): its own permission, a reason for every change, and a
    package on sale keeps its price and face value (the service refuses otherwise)."""

    form = ResourcePackageForm
    list_display = (
        "name_en",
        "name_zh",
        "price",
        "face_col",
        "validity_days",
        "sale_starts_at",
        "sale_ends_at",
        "per_user_limit",
        "active",
    )
    list_filter = ("active",)
    inlines = [AuditRecordInline]

    @admin.display(description=_("Face value"))
    def face_col(self, obj):
        return money_html(obj.face_micro)

    def _may(self, request):
        return request.user.has_perm("billing.manage_resource_packages")

    def has_view_permission(self, request, obj=None):
        return self._may(request)

    def has_add_permission(self, request):
        return self._may(request)

    def has_change_permission(self, request, obj=None):
        return self._may(request)

    def has_delete_permission(self, request, obj=None):
        return False  # retire a package (inactive / sale end), never delete it

    def save_model(self, request, obj, form, change):
        from .services.packages import save_package

        try:
            save_package(obj, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            # shown on the changelist; nothing was saved
            messages.error(request, " ".join(exc.messages))
            raise _Refused from exc

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused:
            return redirect(request.path)

    def save_related(self, request, form, formsets, change):
        pass  # the audit inline is read-only


class _Refused(Exception):
    pass


@admin.register(PackageHolding)
class PackageHoldingAdmin(ReadOnlyAdmin):
    list_display = ("id", "account", "package", "remaining_col", "face_col", "expires_at", "state")
    list_filter = ("state",)
    list_select_related = ("package",)
    raw_id_fields = ("account",)

    @admin.display(description=_("Left"))
    def remaining_col(self, obj):
        return money_html(obj.remaining_micro)

    @admin.display(description=_("Face value"))
    def face_col(self, obj):
        return money_html(obj.face_micro)


@admin.register(SpendLimit)
class SpendLimitAdmin(ReadOnlyAdmin):
    list_display = ("id", "account", "api_key", "period", "hard", "limit_col", "period_start")
    list_filter = ("period", "hard")
    raw_id_fields = ("account", "api_key")

    @admin.display(description=_("Limit"))
    def limit_col(self, obj):
        return money_html(obj.limit_micro)
