from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from core.admin import (
    AuditRecordInline,
    CustomerLinkMixin,
    ReadOnlyAdminMixin,
    WorkflowAdminMixin,
)
from core.forms import ReasonForm

from . import services
from .forms import CapacityExceptionForm
from .models import (
    AgreementAcceptance,
    AgreementState,
    AgreementVersion,
    ApiKey,
    BalanceAccount,
    User,
    Verification,
    VerificationKind,
    VerificationState,
    effective_in_future,
)


class BalanceAccountInline(admin.StackedInline):
    model = BalanceAccount
    can_delete = False
    fields = ("standing", "threshold", "freeze_authority", "freeze_document_number")
    readonly_fields = fields
    show_change_link = True

    @admin.display(description=_("Low-balance threshold"))
    def threshold(self, obj):
        # a MoneyField left empty would print "None"
        return obj.low_balance_threshold if obj.low_balance_threshold is not None else "—"


class VerificationInline(admin.TabularInline):
    """The user's verifications at a glance, masked (R-ACC-5); review happens on the case."""

    model = Verification
    fk_name = "user"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("kind", "state", "masked_number", "submitted_at", "reviewed_at")
    readonly_fields = fields
    ordering = ("-created_at",)

    @admin.display(description=_("ID number / credit code"))
    def masked_number(self, obj):
        return obj.masked_number

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(CustomerLinkMixin, BaseUserAdmin):
    customer_user_path = "id"
    ordering = ("email",)
    list_display = (
        "email",
        "customer",
        "phone",
        "display_name",
        "is_staff",
        "is_active",
        "date_joined",
    )
    list_filter = ("is_staff", "is_active", "groups")
    search_fields = ("email", "phone", "display_name")
    date_hierarchy = "date_joined"
    fieldsets = (
        (None, {"fields": ("email", "password", "customer")}),
        (_("Profile"), {"fields": ("display_name", "phone", "language")}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "phone", "password1", "password2")}),
    )
    readonly_fields = ("last_login", "date_joined", "customer")
    inlines = [BalanceAccountInline, VerificationInline]
    actions = ["issue_otp_enrolment_code"]

    @admin.action(description=_("Issue a second-factor enrolment code (staff, shown once)"))
    def issue_otp_enrolment_code(self, request, queryset):
        """Issue 24: a staff member enrols an authenticator only with a one-time code that
        another superuser issued here and hands over out of band (accounts/otp.py)."""
        from django.contrib import messages
        from django.core.exceptions import PermissionDenied

        from .otp import issue_enrolment_code

        for staff in queryset.filter(is_staff=True)[:20]:
            try:
                code = issue_enrolment_code(staff, actor=request.user)
            except PermissionDenied as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                _("Enrolment code for %(email)s: %(code)s (give it to them in person)")
                % {"email": staff.email, "code": code},
                messages.WARNING,
            )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # a user added by staff gets a balance account too (R-ACC-1)
            services.open_balance_account(obj)


@admin.register(BalanceAccount)
class BalanceAccountAdmin(CustomerLinkMixin, WorkflowAdminMixin, admin.ModelAdmin):
    customer_user_path = "user_id"
    fsm_fields = ["standing"]
    list_display = ("user", "customer", "standing", "standing_changed_at", "created_at")
    list_filter = ("standing",)
    search_fields = ("user__email", "user__phone")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "customer",
        "standing",
        "freeze_authority",
        "freeze_document_number",
        "standing_changed_at",
        "created_at",
    )
    fields = readonly_fields + ("low_balance_threshold",)
    inlines = [AuditRecordInline]

    def has_add_permission(self, request):
        return False  # opened automatically with the user (R-ACC-1)

    def has_delete_permission(self, request, obj=None):
        return False


# ---------------------------------------------------------------- verification queue
@admin.register(Verification)
class VerificationAdmin(CustomerLinkMixin, WorkflowAdminMixin, admin.ModelAdmin):
    """The CS review queue (R-ACC-2, R-ADM-3). Names and numbers appear masked (R-ACC-5)."""

    customer_user_path = "user_id"

    fsm_fields = ["state"]
    list_display = (
        "id",
        "user",
        "customer",
        "kind",
        "state",
        "masked_name",
        "masked_number",
        "check_result",
        "submitted_at",
        "waiting",
        "reviewed_by",
    )
    list_filter = ("state", "kind", "check_digit_warning")
    search_fields = ("user__email", "user__phone", "phone")
    search_help_text = _("User email or phone")
    date_hierarchy = "submitted_at"
    list_select_related = ("user", "reviewed_by")
    ordering = ("submitted_at", "id")  # a review queue: oldest first
    fields = (
        "user",
        "customer",
        "kind",
        "state",
        "masked_name",
        "masked_number",
        "birth_date",
        "masked_representative",
        "phone",
        "licence",
        "check_character",
        "submitted_at",
        "reviewed_at",
        "reviewed_by",
        "rejection_reason",
        "capacity_exception",
    )
    readonly_fields = fields
    inlines = [AuditRecordInline]
    # Shown only to staff holding accounts.view_identity_document (R-ACC-5): a birth date
    # with a masked number is most of an ID number.
    identity_only_fields = ("birth_date",)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if request.user.has_perm("accounts.view_identity_document"):
            return fields
        return [f for f in fields if f not in self.identity_only_fields]

    @admin.display(description=_("Waiting"))
    def waiting(self, obj):
        if obj.state != VerificationState.SUBMITTED or obj.submitted_at is None:
            return "—"
        return timesince(obj.submitted_at)

    def transition_case(self, request, obj, transition_name):
        """A review decision also needs the other accounts on the same identity (R-ACC-4)."""
        rows = super().transition_case(request, obj, transition_name)
        others = list(
            Verification.objects.filter(identity_hash=obj.identity_hash)
            .exclude(pk=obj.pk)
            .filter(state__in=[VerificationState.SUBMITTED, VerificationState.APPROVED])
            .select_related("user")
            .order_by("id")
        )
        shown = "; ".join(f"{v.user.email} ({v.get_state_display()})" for v in others)
        rows.append((_("Other accounts on this identity"), shown or _("none")))
        return rows

    @admin.display(description=_("Name"))
    def masked_name(self, obj):
        return obj.masked_name

    @admin.display(description=_("ID number / credit code"))
    def masked_number(self, obj):
        return obj.masked_number

    @admin.display(description=_("Legal representative"))
    def masked_representative(self, obj):
        return obj.masked_representative if obj.kind == VerificationKind.ENTERPRISE else "—"

    @admin.display(description=_("Check character"), ordering="check_digit_warning")
    def check_result(self, obj):
        # Words, the right way round: a green tick on "warning = yes" read as all clear.
        if obj.kind != VerificationKind.ENTERPRISE:
            return "—"
        return _("⚠ fails GB 32100") if obj.check_digit_warning else _("passes")

    @admin.display(description=_("Credit code check character"))
    def check_character(self, obj):
        # Shown as words, not a red/green boolean: a failing code is a warning to CS,
        # not a refusal (R-ACC-2), and individuals have no credit code at all.
        if obj.kind != VerificationKind.ENTERPRISE:
            return "—"
        if obj.check_digit_warning:
            return "FAILS the GB 32100 check: verify the code against the licence by hand"
        return "passes the GB 32100 check"

    @admin.display(description=_("Business licence"))
    def licence(self, obj):
        if not obj.licence_file:
            return "—"
        return "received (encrypted; download needs the identity permission)"

    @admin.display(description=_("16-18 own-income exception"))
    def capacity_exception(self, obj):
        if not obj.has_capacity_exception:
            return "—"
        return format_html(
            "recorded {} by {}: {}",
            obj.capacity_exception_at.strftime("%Y-%m-%d"),
            obj.capacity_exception_by,
            obj.capacity_exception_note,
        )

    def has_add_permission(self, request):
        return False  # users submit from their pages

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/identity/",
                wrap(self.identity_view),
                name="accounts_verification_identity",
            ),
            path(
                "<int:pk>/capacity-exception/",
                wrap(self.capacity_exception_view),
                name="accounts_verification_capacity",
            ),
            *super().get_urls(),
        ]

    def _links(self, request, obj):
        links = []
        if request.user.has_perm("accounts.view_identity_document"):
            links.append(
                {
                    "label": _("Show full identity data"),
                    "url": reverse("admin:accounts_verification_identity", args=[obj.pk]),
                }
            )
            for which, field in (
                ("licence", "licence_file"),
                ("evidence", "capacity_evidence_file"),
            ):
                if getattr(obj, field):
                    links.append(
                        {
                            "label": f"Download {which}",
                            "url": reverse("accounts:verification_document", args=[obj.pk, which]),
                        }
                    )
        if (
            request.user.has_perm("accounts.record_capacity_exception")
            and obj.kind == VerificationKind.INDIVIDUAL
            and obj.state == VerificationState.APPROVED
            and not obj.has_capacity_exception
        ):
            links.append(
                {
                    "label": _("Record own-income exception"),
                    "url": reverse("admin:accounts_verification_capacity", args=[obj.pk]),
                }
            )
        return links

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context["workflow_links"] = self._links(request, obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def _case(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Verification.objects.select_related("user"), pk=pk)

    def identity_view(self, request, pk):
        """Unmasked data: needs accounts.view_identity_document and a reason; audited."""
        obj = self._case(request, pk)
        if not request.user.has_perm("accounts.view_identity_document"):
            raise PermissionDenied
        form = ReasonForm(request.POST or None)
        data = None
        if request.method == "POST" and form.is_valid():
            data = services.reveal_identity(
                obj, actor=request.user, reason=form.cleaned_data["reason"]
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "form": form,
            "data": data,
            "title": _("Full identity data"),
        }
        response = TemplateResponse(request, "admin/accounts/identity_reveal.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def capacity_exception_view(self, request, pk):
        obj = self._case(request, pk)
        if not request.user.has_perm("accounts.record_capacity_exception"):
            raise PermissionDenied
        form = CapacityExceptionForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.record_capacity_exception(
                    obj,
                    actor=request.user,
                    note=form.cleaned_data["note"],
                    evidence_file=form.cleaned_data["evidence_file"],
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                self.message_user(request, _("Own-income exception recorded."), messages.SUCCESS)
                return redirect("admin:accounts_verification_change", obj.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "form": form,
            "title": _("Record the 16-18 own-income exception"),
        }
        return TemplateResponse(request, "admin/accounts/capacity_exception.html", context)


# ---------------------------------------------------------------- API keys
@admin.register(ApiKey)
class ApiKeyAdmin(CustomerLinkMixin, WorkflowAdminMixin, admin.ModelAdmin):
    """Keys by prefix and owner; risk officers lock and unlock (R-ACC-6, §5.2)."""

    customer_user_path = "account__user_id"

    fsm_fields = ["state"]
    list_display = ("prefix", "name", "owner", "customer", "state", "created_at", "last_used_at")
    list_filter = ("state",)
    search_fields = ("prefix", "account__user__email")
    search_help_text = _("Key prefix or owner email")
    date_hierarchy = "created_at"
    list_select_related = ("account__user",)
    fields = ("prefix", "name", "account", "customer", "state", "created_at", "last_used_at")
    readonly_fields = fields
    inlines = [AuditRecordInline]

    @admin.display(description=_("Owner"), ordering="account__user__email")
    def owner(self, obj):
        return obj.account.user

    def has_add_permission(self, request):
        return False  # created by users from their pages; the secret is theirs alone

    def has_delete_permission(self, request, obj=None):
        return False


# ---------------------------------------------------------------- agreements
@admin.register(AgreementVersion)
class AgreementVersionAdmin(WorkflowAdminMixin, admin.ModelAdmin):
    """Draft, then publish with an effective date in the future (R-ACC-7)."""

    fsm_fields = ["state"]
    list_display = (
        "version",
        "title",
        "state",
        "effective_at",
        "published_at",
        "published_by",
        "acceptance_count",
    )
    list_filter = ("state",)
    search_fields = ("version", "title")
    date_hierarchy = "effective_at"
    list_select_related = ("published_by",)
    fields = ("version", "title", "body", "effective_at", "state", "published_at", "published_by")
    inlines = [AuditRecordInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class DraftForm(form):
            def clean_effective_at(self):
                # A draft that could never be published is refused here, with the same
                # condition the publish transition uses, rather than losing its button.
                value = self.cleaned_data.get("effective_at")
                probe = AgreementVersion(effective_at=value)
                if not effective_in_future(probe):
                    raise ValidationError(
                        _("The effective date must be in the future: users are told in advance.")
                    )
                return value

        return DraftForm

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_acceptances=Count("acceptances"))

    @admin.display(description=_("Acceptances"), ordering="_acceptances")
    def acceptance_count(self, obj):
        return obj._acceptances

    def get_readonly_fields(self, request, obj=None):
        base = ["state", "published_at", "published_by"]
        if obj is not None and obj.state == AgreementState.PUBLISHED:
            # A published text is what users accepted: it never changes.
            return ["version", "title", "body", "effective_at", *base]
        return base

    def has_delete_permission(self, request, obj=None):
        # Only drafts, and only for staff who hold the delete permission.
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or obj.state == AgreementState.DRAFT


@admin.register(AgreementAcceptance)
class AgreementAcceptanceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "version", "accepted_at", "ip")
    list_filter = ("version",)
    search_fields = ("user__email", "user__phone")
    date_hierarchy = "accepted_at"
    list_select_related = ("user", "version")
    readonly_fields = ("user", "version", "accepted_at", "ip")
