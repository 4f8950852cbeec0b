import logging

from django.contrib import admin, messages
from django.contrib.admin.utils import (
    display_for_field,
    display_for_value,
    label_for_field,
    lookup_field,
)
from django.contrib.contenttypes.admin import GenericTabularInline
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_fsm.admin import FSMAdminMixin

from .models import AuditRecord
from .workflow import perform_transition, transition_services

logger = logging.getLogger(__name__)


class ReadOnlyAdminMixin:
    """An admin that shows rows and changes none: written by services, jobs or the
    ledger, never by hand in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditRecordInline(GenericTabularInline):
    """The case history, newest first, on every workflow object (R-ADM-2)."""

    model = AuditRecord
    ct_field = "content_type"
    ct_fk_field = "object_id"
    extra = 0
    can_delete = False
    fields = ("at", "action", "from_state", "to_state", "actor", "reason", "details")
    readonly_fields = fields
    ordering = ("-at", "-id")
    verbose_name_plural = _("History")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class WorkflowAdminMixin(FSMAdminMixin):
    """FSM transition buttons that go through the service layer, never around it.

    Each button runs the service the model's transition map names
    (core.workflow.transition_map), with the reason every transition asks for.
    Every refusal (wrong state, a failed condition, a missing permission, a rule
    the service enforces) comes back to staff as a message, never a server error.
    """

    # Buttons are links to the reason form, so staff need only the view permission
    # on the model plus the transition's own permission (least privilege, R-ADM-1).
    change_form_template = "admin/core/workflow_change_form.html"
    fsm_transition_form_template = "admin/core/workflow_transition_form.html"
    fsm_default_disallow_transition = True

    def transition_case(self, request, obj, transition_name):
        """What the transition form shows of the case it acts on: (label, value) rows.

        By default the queue's own columns (list_display) for this case; an admin adds
        what a decision needs (ages, warnings, related cases) by overriding this.
        """
        rows = []
        for name in self.get_list_display(request):
            if name == "action_checkbox" or callable(name):
                continue
            try:
                field, attr, value = lookup_field(name, obj, self)
            except (AttributeError, ObjectDoesNotExist):
                continue
            label = label_for_field(name, self.model, self)
            if field is not None:
                shown = display_for_field(value, field, "—")
            else:
                shown = display_for_value(value, "—", boolean=getattr(attr, "boolean", False))
            rows.append((label, shown))
        return rows

    def get_fsm_transition_form(self, transition):
        form = super().get_fsm_transition_form(transition)
        if form is None:
            from .forms import ReasonForm

            return ReasonForm
        return form

    def get_help_text(self, transition):
        return transition.custom.get("help_text") or ""

    def is_fsm_transition_visible(self, transition):
        return bool(transition.custom.get("admin", True)) and (
            transition.name in transition_services(self.model)
        )

    def fsm_transition_view(self, request, object_id, transition_name, **kwargs):
        if transition_name not in transition_services(self.model):
            obj = self.get_object(request, object_id)
            label = transition_name.replace("_", " ")
            self.message_user(request, f"There is no transition {label!r} here.", messages.ERROR)
            if obj is None:
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
            opts = self.model._meta
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", object_id=obj.pk)
        obj = self.get_object(request, object_id)
        if obj is not None:
            # the form's template reads it from the request (django_fsm builds its context)
            request.workflow_case = self.transition_case(request, obj, transition_name)
        return super().fsm_transition_view(request, object_id, transition_name, **kwargs)

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        data = dict(kwargs or {})
        reason = data.pop("reason", "")
        try:
            perform_transition(obj, transition_name, actor=request.user, reason=reason, **data)
        except PermissionDenied as exc:
            self.message_user(request, str(exc) or "Not allowed.", messages.ERROR)
            return False
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return False
        # Say where the case ended up: a transition may route it elsewhere (e.g. to review).
        obj.refresh_from_db()
        states = [
            getattr(obj, f"get_{field}_display", lambda f=field: getattr(obj, f))()
            for field in self.fsm_fields
        ]
        label = transition_name.replace("_", " ").capitalize()
        self.message_user(request, f"{label}: done. Now: {', '.join(map(str, states))}.")
        return True


class ReadOnlyInline(admin.TabularInline):
    """Rows a case shows but staff never add, edit or delete there (lines, files, payouts)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ProtectedFileInline(ReadOnlyInline):
    """Encrypted files of a case: a link to the audited download view for staff holding
    `file_permission`, the words "received (encrypted)" for everyone else.

    Set `file_permission`, `file_url_name` (an admin URL taking the case id and the file
    id) and `case_field` (the file's foreign key to its case)."""

    file_permission = ""
    file_url_name = ""
    case_field = "request"
    file_link_text = "Open (audited)"

    def get_queryset(self, request):
        self._request = request
        return super().get_queryset(request).select_related("uploaded_by")

    @admin.display(description=_("File"))
    def open(self, obj):
        request = getattr(self, "_request", None)
        if request is None or not request.user.has_perm(self.file_permission):
            return "received (encrypted)"
        url = reverse(self.file_url_name, args=[getattr(obj, f"{self.case_field}_id"), obj.pk])
        return format_html('<a href="{}">{}</a>', url, self.file_link_text)


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "content_type", "object_id", "action", "from_state", "to_state", "actor")
    list_filter = ("content_type", "action")
    search_fields = ("object_id", "actor__email", "reason")
    date_hierarchy = "at"
    list_select_related = ("content_type", "actor")


def _csv_cell(value):
    from djmoney.money import Money

    if isinstance(value, Money):
        return f"{value.amount}"  # exact figure; the column header names the currency
    if value is None:
        return ""
    text = str(value)
    # Spreadsheet formula injection: a leading =,+,-,@ is neutralised.
    if text[:1] in {"=", "+", "-", "@"} and not text.lstrip("-").replace(".", "", 1).isdigit():
        return "'" + text
    return text


@admin.action(description=_("Export selected rows as CSV"))
def export_as_csv(modeladmin, request, queryset):
    """CSV export for finance (R-ADM-3): the list's own columns, as staff see them.

    Uses the changelist's columns (so masked data stays masked) and its
    select_related, streaming rows so a large export stays small in memory.
    """
    import csv

    from django.contrib.admin.utils import label_for_field, lookup_field
    from django.http import StreamingHttpResponse

    columns = [c for c in modeladmin.get_list_display(request) if c != "action_checkbox"]
    related = modeladmin.get_list_select_related(request)
    if related is True:
        queryset = queryset.select_related()
    elif related:
        queryset = queryset.select_related(*related)

    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())

    def rows():
        yield writer.writerow(
            [str(label_for_field(c, modeladmin.model, modeladmin)) for c in columns]
        )
        for obj in queryset.iterator(chunk_size=2000):
            yield writer.writerow([_csv_cell(lookup_field(c, obj, modeladmin)[2]) for c in columns])

    name = modeladmin.model._meta.model_name
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-export.csv"'
    return response


# Every admin list can be exported by anyone who may view it.
export_as_csv.allowed_permissions = ("view",)
admin.site.add_action(export_as_csv, "export_as_csv")
