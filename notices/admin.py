from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import services
from .models import EmailOptOut, Notice


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "kind",
        "subject",
        "status",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "read_at",
    )
    list_filter = ("status", "kind", "channel")
    search_fields = ("user__email", "user__phone", "subject", "dedupe_key")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = [f.name for f in Notice._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(
        description=_("Retry delivery of failed / given-up notices"), permissions=["change"]
    )
    def send_again(self, request, queryset):
        count = services.retry_now(queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} notice(s) will be sent at the next delivery run.")


@admin.register(EmailOptOut)
class EmailOptOutAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("user__email",)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
