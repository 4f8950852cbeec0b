from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from core.admin import AuditRecordInline, ReadOnlyAdminMixin, WorkflowAdminMixin

from . import selectors, services
from .models import AlertStatus, JobRun, StaffAlert


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The run log, with every job's schedule and a Run-now button above it."""

    change_list_template = "ops/jobrun_change_list.html"
    list_display = (
        "job",
        "status",
        "triggered_by",
        "started_at",
        "finished_at",
        "rows_touched",
        "batches",
        "triggered_by_user",
    )
    list_filter = ("status", "job", "triggered_by")
    search_fields = ("job", "error")
    date_hierarchy = "started_at"
    list_select_related = ("triggered_by_user",)
    readonly_fields = [f.name for f in JobRun._meta.fields]
    actions = ["run_again"]

    def can_run(self, request):
        return request.user.has_perm("ops.run_job")

    def get_urls(self):
        custom = [
            path(
                "run/<str:name>/",
                self.admin_site.admin_view(require_POST(self.run_view)),
                name="ops_jobrun_run",
            )
        ]
        return custom + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["job_overview"] = selectors.job_overview()
        extra_context["can_run_jobs"] = self.can_run(request)
        return super().changelist_view(request, extra_context=extra_context)

    def _run(self, request, name):
        try:
            run = services.queue_job(name, user=request.user)
        except LookupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if run is None:
            self.message_user(
                request,
                _("Job %(job)s queued; its run appears here when it starts.") % {"job": name},
            )
        else:
            level = messages.SUCCESS if run.status == "ok" else messages.WARNING
            rows = ngettext("%(n)s row", "%(n)s rows", run.rows_touched) % {"n": run.rows_touched}
            batches = ngettext("%(n)s batch", "%(n)s batches", run.batches) % {"n": run.batches}
            self.message_user(
                request,
                _("Job %(job)s: %(status)s, %(rows)s in %(batches)s.")
                % {
                    "job": name,
                    "status": run.get_status_display(),
                    "rows": rows,
                    "batches": batches,
                },
                level,
            )

    def run_view(self, request, name):
        if not self.can_run(request):
            raise PermissionDenied
        self._run(request, name)
        return redirect(reverse("admin:ops_jobrun_changelist"))

    @admin.action(description=_("Run these jobs again now"), permissions=["run"])
    def run_again(self, request, queryset):
        for name in sorted(set(queryset.values_list("job", flat=True))):
            self._run(request, name)

    def has_run_permission(self, request):
        return self.can_run(request)


@admin.register(StaffAlert)
class StaffAlertAdmin(WorkflowAdminMixin, admin.ModelAdmin):
    fsm_fields = ["status"]
    list_display = ("created_at", "kind", "short_message", "status", "occurrences", "last_seen_at")
    list_filter = ("status", "kind")
    search_fields = ("message", "key")
    date_hierarchy = "created_at"
    list_select_related = ("acknowledged_by",)
    readonly_fields = (
        "kind",
        "key",
        "message",
        "details",
        "status",
        "occurrences",
        "created_at",
        "last_seen_at",
        "acknowledged_at",
        "acknowledged_by",
    )
    inlines = [AuditRecordInline]
    actions = ["acknowledge_selected"]

    @admin.display(description=_("Message"))
    def short_message(self, obj):
        return obj.message[:120]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Acknowledge selected alerts"), permissions=["acknowledge"])
    def acknowledge_selected(self, request, queryset):
        done = 0
        for alert in queryset.filter(status=AlertStatus.OPEN):
            services.acknowledge_alert(alert, actor=request.user, reason="Acknowledged in bulk")
            done += 1
        self.message_user(request, f"{done} alert(s) acknowledged.")

    def has_acknowledge_permission(self, request):
        return request.user.has_perm("ops.acknowledge_staffalert")


# django-celery-beat's own actions (enable, disable, toggle, run now) check no
# permission: a read-only auditor could pause a job. Re-register its admin so
# those actions need the change permission on schedules.
from django_celery_beat.admin import PeriodicTaskAdmin as _BeatPeriodicTaskAdmin  # noqa: E402
from django_celery_beat.models import PeriodicTask  # noqa: E402


class GuardedPeriodicTaskAdmin(_BeatPeriodicTaskAdmin):
    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            for name in ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"):
                actions.pop(name, None)
        return actions

    def response_action(self, request, queryset):
        action = request.POST.get("action", "")
        guarded = {"enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"}
        if action in guarded and not self.has_change_permission(request):
            raise PermissionDenied
        return super().response_action(request, queryset)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, GuardedPeriodicTaskAdmin)
