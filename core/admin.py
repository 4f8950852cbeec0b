import dataclasses
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

from . import history
from .models import AuditRecord
from .workflow import check_actor, perform_transition, transition_services

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
    # Raw names and micro figures stay in the record; staff read them in words (issue 21).
    fields = ("at", "what", "state_from", "state_to", "who", "why", "facts")
    readonly_fields = fields
    ordering = ("-at", "-id")
    verbose_name = _("history entry")
    verbose_name_plural = _("History")

    @admin.display(description=_("What"))
    def what(self, obj):
        return history.action_label(obj.content_type.model_class(), obj.action)

    @admin.display(description=_("From"))
    def state_from(self, obj):
        return history.state_label(obj.content_type.model_class(), obj.from_state)

    @admin.display(description=_("To"))
    def state_to(self, obj):
        return history.state_label(obj.content_type.model_class(), obj.to_state)

    @admin.display(description=_("Who"))
    def who(self, obj):
        return obj.actor or _("the system")

    @admin.display(description=_("Why"))
    def why(self, obj):
        return history.reason_text(obj.reason) or "—"

    @admin.display(description=_("Details"))
    def facts(self, obj):
        return history.details_text(obj.content_type.model_class(), obj.details)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor", "content_type")


class ActionFilter(admin.SimpleListFilter):
    """The audit list's actions in words, not raw transition names."""

    title = _("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = AuditRecord.objects.order_by("action").values_list("action", flat=True)
        return [(a, history.action_label_any(a)) for a in actions.distinct()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action=self.value())
        return queryset


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

    def get_fsm_block_label(self, fsm_field_name):
        field = self.model._meta.get_field(fsm_field_name)
        return _("Steps (%(field)s)") % {"field": field.verbose_name}

    def get_help_text(self, transition):
        return transition.custom.get("help_text") or ""

    def is_fsm_transition_visible(self, transition):
        return bool(transition.custom.get("admin", True)) and (
            transition.name in transition_services(self.model)
        )

    def fsm_transition_view(self, request, object_id, transition_name, **kwargs):
        if transition_name not in transition_services(self.model):
            obj = self.get_object(request, object_id)
            label = history.action_label(self.model, transition_name)
            refusal = _("This case has no step “%(action)s”.") % {"action": label}
            self.message_user(request, refusal, messages.ERROR)
            if obj is None:
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
            opts = self.model._meta
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", object_id=obj.pk)
        obj = self.get_object(request, object_id)
        if obj is not None:
            # django_fsm's own refusal names the raw transition: say it in the staff
            # member's words, and who may do it, before its view is reached
            try:
                check_actor(obj, transition_name, request.user)
            except (PermissionDenied, ValidationError) as exc:
                text = "; ".join(getattr(exc, "messages", None) or [str(exc)])
                self.message_user(request, text or _("You may not do this."), messages.ERROR)
                opts = self.model._meta
                return redirect(
                    f"admin:{opts.app_label}_{opts.model_name}_change", object_id=obj.pk
                )
            # the form's template reads it from the request (django_fsm builds its context)
            request.workflow_case = self.transition_case(request, obj, transition_name)
        return super().fsm_transition_view(request, object_id, transition_name, **kwargs)

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        data = dict(kwargs or {})
        reason = data.pop("reason", "")
        try:
            perform_transition(obj, transition_name, actor=request.user, reason=reason, **data)
        except PermissionDenied as exc:
            self.message_user(request, str(exc) or _("You may not do this."), messages.ERROR)
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
        self.message_user(request, self.transition_done_message(obj, transition_name, states))
        return True

    # --- what happens next, and which buttons this staff member may press --------------

    # {state value: message} for a state whose next step is no button (a job, a channel)
    next_steps: dict = {}
    # {transition name: (fields holding staff ids)}: four eyes, that person may not press it
    four_eyes: dict = {}

    def _transition(self, obj, name):
        method = getattr(type(obj), name, None)
        meta = getattr(method, "_django_fsm", None)
        return meta.get_transition(getattr(obj, meta.field.name)) if meta else None

    def transition_done_message(self, obj, transition_name, states):
        """ "Approved (finance): done. Now: Approved. Next: Finance approver clicks “Start
        payout”." Staff always read who acts next, or that nothing is left to do."""
        self._role_cache = {}
        from django.utils.translation import gettext

        done = gettext("%(action)s: done. Now: %(state)s.") % {
            "action": self._label_from_map(obj, transition_name),
            "state": ", ".join(map(str, states)),
        }
        return f"{done} {self.next_step_text(obj)}"

    def _label_from_map(self, obj, name):
        """A transition's label whatever state the case moved to (read from the model)."""
        method = getattr(type(obj), name, None)
        meta = getattr(method, "_django_fsm", None)
        if meta:
            for transition in meta.transitions.values():
                if transition.custom.get("label"):
                    return str(transition.custom["label"])
        return name.replace("_", " ")

    def next_step_text(self, obj):
        from django.utils.translation import gettext

        state = getattr(obj, self.fsm_fields[0], "")
        if state in self.next_steps:
            return str(self.next_steps[state])
        steps = []
        for transition in self._open_transitions(obj):
            roles = self._roles_for(transition)
            steps.append(
                gettext("%(who)s clicks “%(button)s”")
                % {
                    "who": roles or gettext("Staff with the permission"),
                    "button": transition.custom.get("label") or transition.name,
                }
            )
        if not steps:
            return gettext("Nothing more to do on this case.")
        return gettext("Next: %(steps)s.") % {"steps": gettext("; or ").join(steps)}

    def _open_transitions(self, obj):
        """The admin's buttons from the case's state, conditions met, anyone's."""
        found = []
        for field in self.fsm_fields:
            method = getattr(obj, f"get_available_{field}_transitions", None)
            if callable(method):
                found.extend(t for t in method() if self.is_fsm_transition_visible(t))
        return found

    def _roles_for(self, transition):
        """The staff groups that hold the transition's permission, as words ("CS agent")."""
        from django.contrib.auth.models import Group
        from django.utils.translation import gettext

        permission = transition.permission
        if not isinstance(permission, str) or "." not in permission:
            return ""
        app_label, codename = permission.split(".", 1)
        # one query per permission and page (reset by the two callers below): a group's
        # permissions may change between requests
        cache = self.__dict__.setdefault("_role_cache", {})
        if permission not in cache:
            names = Group.objects.filter(
                permissions__content_type__app_label=app_label, permissions__codename=codename
            ).values_list("name", flat=True)
            cache[permission] = [n for n in names if n != "Auditor"]
        return gettext(" or ").join(gettext(name) for name in sorted(cache[permission]))

    def transition_refusal(self, request, obj, transition):
        """Why this staff member may not press `transition` on this case, or None: not
        their role, their own case (R-ADM-4), or four eyes (they proposed, reviewed or
        filed it)."""
        from django.utils.translation import gettext

        user = request.user
        if not transition.has_perm(obj, user):
            roles = self._roles_for(transition)
            if roles:
                return gettext("Needs a %(roles)s.") % {"roles": roles}
            return gettext("Needs a permission you do not hold.")
        owner = getattr(obj, "user_id", None)
        if owner is None and getattr(obj, "account_id", None):
            owner = getattr(obj.account, "user_id", None)
        if owner is not None and owner == user.pk and type(obj).__name__ != "BalanceAccount":
            return gettext("This is your own account's case: another staff member must act.")
        for field in self.four_eyes.get(transition.name, ()):
            if getattr(obj, field, None) == user.pk:
                return gettext(
                    "Four eyes: you already acted on this case, so another staff member with "
                    "the same role must press it."
                )
        return None

    def _get_fsm_extra_context(self, *, request, obj):
        """django_fsm's buttons, less those this staff member may not press on this case;
        the reasons go to `workflow_refused` (read by the change form's template)."""
        self._role_cache = {}
        refused, blocks = [], []
        if obj is None:
            request.workflow_refused = refused
            return blocks
        for block in super()._get_fsm_extra_context(request=request, obj=obj):
            allowed = []
            for context in block.available_transitions:
                transition = self._transition(obj, context.name)
                reason = transition and self.transition_refusal(request, obj, transition)
                if reason:
                    refused.append((context.label, reason))
                else:
                    allowed.append(context)
            if allowed:
                blocks.append(dataclasses.replace(block, available_transitions=allowed))
        for transition in self._open_transitions(obj):
            if transition.has_perm(obj, request.user):
                continue  # offered above, or refused there with its reason
            label = transition.custom.get("label") or transition.name
            refused.append((label, self.transition_refusal(request, obj, transition)))
        request.workflow_refused = refused
        return blocks


def micro_as_money(field):
    """A read-only column showing an integer micro-unit field as ¥1,234.50 (issue 21:
    staff never read a raw micro figure such as 30000000)."""
    from decimal import Decimal

    from .money import yuan

    def show(obj):
        value = getattr(obj, field.name)
        return "—" if value is None else yuan(Decimal(value) / 1_000_000)

    show.short_description = field.verbose_name
    show.__name__ = field.name
    return show


def readable_fields(model):
    """Every field of `model` for a read-only case page, micro-unit fields as money."""
    return [micro_as_money(f) if f.name.endswith("_micro") else f.name for f in model._meta.fields]


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
    file_link_text = _("Open (audited)")

    def get_queryset(self, request):
        self._request = request
        return super().get_queryset(request).select_related("uploaded_by")

    @admin.display(description=_("File"))
    def open(self, obj):
        request = getattr(self, "_request", None)
        if request is None or not request.user.has_perm(self.file_permission):
            return _("received (encrypted)")
        url = reverse(self.file_url_name, args=[getattr(obj, f"{self.case_field}_id"), obj.pk])
        return format_html('<a href="{}">{}</a>', url, self.file_link_text)


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "content_type", "object_id", "what", "state_from", "state_to", "who")
    list_filter = ("content_type", ActionFilter)
    search_fields = ("object_id", "actor__email", "reason")
    date_hierarchy = "at"
    list_select_related = ("content_type", "actor")
    fields = ("at", "content_type", "object_id", "what", "state_from", "state_to", "who", "why")
    fields += ("facts",)
    readonly_fields = fields
    what = AuditRecordInline.what
    state_from = AuditRecordInline.state_from
    state_to = AuditRecordInline.state_to
    who = AuditRecordInline.who
    why = AuditRecordInline.why
    facts = AuditRecordInline.facts


def _csv_cell(value):
    from djmoney.money import Money

    if isinstance(value, Money):
        return f"{value.amount}"  # exact figure; the column header names the currency
    from core.csvsafe import safe_cell

    return safe_cell(value)  # one formula-neutralising rule for every export


@admin.action(description=_("Export selected rows as CSV"))
def export_as_csv(modeladmin, request, queryset):
    """CSV export for finance (R-ADM-3): the list's own columns, as staff see them.

    Uses the changelist's columns (so masked data stays masked) and its
    select_related, streaming rows so a large export stays small in memory.
    """
    import csv

    from django.contrib.admin.utils import label_for_field, lookup_field
    from django.http import StreamingHttpResponse

    # the customer column is a link to a page, not data
    skip = {"action_checkbox", "customer"}
    columns = [c for c in modeladmin.get_list_display(request) if c not in skip]
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
        from core.csvsafe import BOM

        yield BOM  # Chinese Excel reads the file as UTF-8 only with it
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


def customer_url(user_id):
    """The 360° customer page of a user (console mounts it as admin:customer); built by
    URL name only, so a lower app links to it without importing console."""
    return reverse("admin:customer", args=[user_id]) if user_id else ""


def customer_link(user_id, text=None):
    """A link to the 360° page, for list columns and change pages (no query)."""
    if not user_id:
        return "—"
    from django.utils.translation import gettext

    return format_html(
        '<a class="customer-link" href="{}">{}</a>',
        customer_url(user_id),
        text or gettext("Customer view"),
    )


class CustomerLinkMixin:
    """A "Customer" column and change-page field linking to the 360° page.

    `customer_user_path` names the user id from the row (e.g. "account__user_id");
    the list's select_related already reaches it, so the column costs no query."""

    customer_user_path = "account__user_id"

    @admin.display(description=_("Customer"))
    def customer(self, obj):
        target = obj
        for part in self.customer_user_path.split("__")[:-1]:
            target = getattr(target, part, None)
            if target is None:
                return "—"
        return customer_link(getattr(target, self.customer_user_path.split("__")[-1], None))
