from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import services
from .models import EmailOptOut, Notice


def _kind_label(key):
    from .kinds import KINDS

    kind = KINDS.get(key)
    return kind.label if kind is not None else key


class KindFilter(admin.SimpleListFilter):
    """Notice kinds by their names, not their keys."""

    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        from .kinds import KINDS

        return [(key, kind.label) for key, kind in sorted(KINDS.items())]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "kind_label",
        "subject",
        "status",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "read_at",
    )
    list_filter = ("status", KindFilter, "channel")
    search_fields = ("user__email", "user__phone", "subject", "dedupe_key")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    # The kind in words (issue 21); the context, the raw JSON the subject and body were
    # written from, is not shown: staff read the notice as it was sent.
    readonly_fields = [
        {"kind": "kind_label"}.get(f.name, f.name)
        for f in Notice._meta.fields
        if f.name != "context"
    ]
    fields = readonly_fields
    actions = ["send_again"]

    @admin.display(description=_("kind"), ordering="kind")
    def kind_label(self, obj):
        return _kind_label(obj.kind)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(
        description=_("Retry delivery of failed / given-up notices"), permissions=["change"]
    )
    def send_again(self, request, queryset):
        count = services.retry_now(queryset.values_list("id", flat=True))
        self.message_user(
            request,
            _("%(count)s notice(s) will be sent at the next delivery run.") % {"count": count},
        )


@admin.register(EmailOptOut)
class EmailOptOutAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("user__email",)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
