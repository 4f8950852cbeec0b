from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from core.admin import AuditRecordInline, WorkflowAdminMixin

from .models import BalanceAccount, User


class BalanceAccountInline(admin.StackedInline):
    model = BalanceAccount
    can_delete = False
    fields = ("standing", "low_balance_threshold", "freeze_authority", "freeze_document_number")
    readonly_fields = fields
    show_change_link = True


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "phone", "display_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_active", "groups")
    search_fields = ("email", "phone", "display_name")
    date_hierarchy = "date_joined"
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "phone", "language")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "phone", "password1", "password2")}),
    )
    readonly_fields = ("last_login", "date_joined")
    inlines = [BalanceAccountInline]


@admin.register(BalanceAccount)
class BalanceAccountAdmin(WorkflowAdminMixin, admin.ModelAdmin):
    fsm_fields = ["standing"]
    list_display = ("user", "standing", "standing_changed_at", "created_at")
    list_filter = ("standing",)
    search_fields = ("user__email", "user__phone")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "standing",
        "freeze_authority",
        "freeze_document_number",
        "standing_changed_at",
        "created_at",
    )
    fields = readonly_fields + ("low_balance_threshold",)
    transition_service = "accounts.services.change_standing"
    inlines = [AuditRecordInline]

    def has_add_permission(self, request):
        return False  # opened automatically with the user (R-ACC-1)

    def has_delete_permission(self, request, obj=None):
        return False
