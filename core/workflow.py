"""One way to run a django_fsm transition: locked, permission-checked, audited.

Services call `apply_transition` (one case) or `apply_bulk_transition` (a job moving
many cases); each FSM model's transition map names the service that performs each
transition, and admin buttons and views call those services through
`perform_transition`, never the model's methods.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django_fsm import TransitionNotAllowed, can_proceed, has_transition_perm

from .models import AuditRecord


class WorkflowError(ValidationError):
    """A transition that is not allowed from the current state or by its conditions."""


def record_audit(obj, *, action, actor=None, reason="", from_state="", to_state="", **details):
    """One audit row. A model with personal data in its transitions' arguments defines
    `audit_details(details) -> details` to seal them (encrypted at rest, R-ACC-5)."""
    from django.contrib.contenttypes.models import ContentType

    seal_details = getattr(obj, "audit_details", None)
    if callable(seal_details):
        details = seal_details(dict(details))
    return AuditRecord.objects.create(
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
        object_id=str(obj.pk),
        action=action,
        from_state=from_state or "",
        to_state=to_state or "",
        actor=actor if getattr(actor, "pk", None) else None,
        reason=reason or "",
        details=details,
    )


def record_setting_change(obj, *, actor, reason, before, after, action="change_settings"):
    """Audit a change to a money-relevant setting (R-ADM-5): old value, new value, reason.

    `before` / `after` map field names to values ({} before a creation); only the
    fields that changed are recorded, as {"field": {"old": ..., "new": ...}}. A change
    without a reason is refused; a save that changes nothing records nothing.
    """
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason for the change."), code="reason_required")
    changes = {
        name: {"old": _plain(before.get(name)), "new": _plain(value)}
        for name, value in after.items()
        if name not in before or before[name] != value
    }
    if not changes:
        return None
    return record_audit(obj, action=action, actor=actor, reason=reason.strip(), changes=changes)


def _plain(value):
    if value is None or isinstance(value, bool | int):
        return value
    return str(value)


def _state_field(obj, method):
    return method._django_fsm.field.name


def _words(obj, name, state):
    """The transition's button label and the state's label, for refusals staff read."""
    from .history import action_label, state_label

    return {"action": action_label(type(obj), name), "state": state_label(type(obj), state)}


def _who_may(method, obj):
    """The staff groups holding the transition's permission ("财务审批人"), or ""."""
    from django.contrib.auth.models import Group

    from .staff import GROUPS

    meta = method._django_fsm
    perms = set()
    for transition in meta.transitions.values():
        if isinstance(transition.permission, str):
            perms.add(transition.permission)
    if not perms:
        return ""
    names = set()
    for perm in perms:
        app_label, codename = perm.split(".", 1)
        names.update(
            Group.objects.filter(
                permissions__content_type__app_label=app_label, permissions__codename=codename
            ).values_list("name", flat=True)
        )
    return _(" or ").join(sorted(_(n) for n in names if n in GROUPS.values()))


def apply_transition(obj, name, *, actor=None, reason="", check_permission=True, **kwargs):
    """Lock the row, check state, conditions and permission, run, save, audit.

    `actor=None` means the system (a scheduled job) and skips the permission
    check; every human actor must hold the transition's permission.
    """
    model = type(obj)
    with transaction.atomic():
        locked = model._default_manager.select_for_update().get(pk=obj.pk)
        method = getattr(locked, name, None)
        if method is None or not hasattr(method, "_django_fsm"):
            raise WorkflowError(
                _("This case has no step “%(action)s”.") % _words(locked, name, ""),
                code="unknown_transition",
            )
        field = _state_field(locked, method)
        before = getattr(locked, field)
        if not can_proceed(method, check_conditions=False):
            raise WorkflowError(
                _("“%(action)s” is not possible now: the case is “%(state)s”.")
                % _words(locked, name, before),
                code="wrong_state",
            )
        if actor is not None and check_permission:
            _refuse_actor(locked, name, method, actor, before)
        try:
            method(**kwargs)
        except TransitionNotAllowed:
            # django_fsm's own sentence names the raw transition; staff read the step.
            raise WorkflowError(
                _("“%(action)s” is not possible on this case now: its conditions are not met.")
                % _words(locked, name, before),
                code="conditions",
            ) from None
        locked.save()
        record_audit(
            locked,
            action=name,
            actor=actor,
            reason=reason,
            from_state=before,
            to_state=getattr(locked, field),
            **{k: str(v) for k, v in kwargs.items()},
        )
    if obj is not locked:
        obj.refresh_from_db()  # keep the caller's instance in step with the saved row
    return locked


# --- transition maps: which service performs each transition of a model -----------------------
#
# Each FSM model has one map {transition name: service}; the admin's transition buttons
# (core.admin.WorkflowAdminMixin) and anything else that moves a case by name read it,
# so a transition is always performed by its service (which enforces the rules the
# model cannot see: four eyes, identity checks, ledger postings) and never by calling
# the model method directly. The map is declared by the app whose services perform the
# transitions, usually the model's own app; a service in a higher layer may own a
# lower model's map when the transition moves its money (Verification: approval grants
# trial funds, R-TOP-5), so that no lower app ever imports a higher one.
#
# A service has the signature (obj, *, actor, reason, **form_data) -> obj.

_TRANSITION_MAPS: dict[str, dict] = {}


def _model_key(model) -> str:
    if isinstance(model, str):
        return model.lower()
    return model._meta.label_lower


def transition_map(model, services: dict):
    """Declare the one map of `model`: {transition name: service callable}.

    Refuses a second map for the same model and names that are not transitions.
    """
    key = _model_key(model)
    if key in _TRANSITION_MAPS and _TRANSITION_MAPS[key] is not services:
        existing = _TRANSITION_MAPS[key]
        if {n: getattr(s, "__qualname__", s) for n, s in existing.items()} != {
            n: getattr(s, "__qualname__", s) for n, s in services.items()
        }:
            raise ValueError(f"{key} already has a transition map")
    _TRANSITION_MAPS[key] = dict(services)
    return services


def transition_services(model) -> dict:
    """The model's map (empty when none is declared)."""
    return _TRANSITION_MAPS.get(_model_key(model), {})


def _refuse_actor(obj, name, method, actor, before):
    """Raise why `actor` may not run `name` on `obj` (in the staff member's words)."""
    if has_transition_perm(method, actor):
        return
    if not can_proceed(method):
        raise WorkflowError(
            _("“%(action)s” is not possible on this case now: its conditions are not met.")
            % _words(obj, name, before),
            code="conditions",
        )
    who = _who_may(method, obj)
    if who:
        raise PermissionDenied(
            _("“%(action)s” needs a %(who)s: ask one to do it.")
            % {**_words(obj, name, before), "who": who}
        )
    raise PermissionDenied(_("You may not “%(action)s” on this case.") % _words(obj, name, before))


def check_actor(obj, name, actor):
    """Raise WorkflowError or PermissionDenied, in words, when `actor` may not run the
    transition `name` on `obj` now (the admin asks before showing the step's form)."""
    method = getattr(obj, name, None)
    if method is None or not hasattr(method, "_django_fsm"):
        raise WorkflowError(
            _("This case has no step “%(action)s”.") % _words(obj, name, ""),
            code="unknown_transition",
        )
    before = getattr(obj, _state_field(obj, method))
    if not can_proceed(method, check_conditions=False):
        raise WorkflowError(
            _("“%(action)s” is not possible now: the case is “%(state)s”.")
            % _words(obj, name, before),
            code="wrong_state",
        )
    _refuse_actor(obj, name, method, actor, before)


def perform_transition(obj, name, *, actor=None, reason="", **form_data):
    """Run the named transition of `obj` through the service its map names.

    An unknown name is a WorkflowError, like a transition from the wrong state.
    """
    service = transition_services(type(obj)).get(name)
    if service is None:
        raise WorkflowError(
            _("This case has no step “%(action)s”.") % _words(obj, name, ""),
            code="unknown_transition",
        )
    return service(obj, actor=actor, reason=reason, **form_data)


# --- many cases at once -------------------------------------------------------------------------


def apply_bulk_transition(model, ids, name, *, actor=None, reason="", values=None, details=None):
    """Move many rows of `model` through one transition at once, for jobs.

    The rows still in one of the transition's source states are locked (others
    are skipped: already moved, or held by another worker), moved to its target
    with `values` set alongside in one UPDATE, and get one audit row each, the
    same record apply_transition writes for a single case. Transitions with
    conditions are refused here: conditions are checked per instance, which is
    what apply_transition is for. Returns the ids that moved.
    """
    from django.contrib.contenttypes.models import ContentType

    method = getattr(model, name, None)
    meta = getattr(method, "_django_fsm", None)
    if meta is None:
        raise WorkflowError(f"Unknown transition {name!r}.", code="unknown_transition")
    field = meta.field if isinstance(meta.field, str) else meta.field.name
    targets = {t.target for t in meta.transitions.values()}
    if len(targets) != 1 or any(t.conditions for t in meta.transitions.values()):
        raise WorkflowError(
            f"{name!r} cannot run in bulk (several targets or conditions).", code="not_bulk"
        )
    if actor is not None:
        probe = model()
        if not all(t.has_perm(probe, actor) for t in meta.transitions.values()):
            raise PermissionDenied(
                _("You may not “%(action)s”.") % {"action": _words(model(), name, "")["action"]}
            )
    target = targets.pop()
    sources = [s for s in meta.transitions if s not in ("*", "+")]
    ids = list(ids)
    if not ids:
        return []
    with transaction.atomic():
        rows = model._default_manager.filter(pk__in=ids, **{f"{field}__in": sources})
        rows = rows.select_for_update(skip_locked=True, of=("self",))
        before = dict(rows.order_by("pk").values_list("pk", field))
        if not before:
            return []
        model._default_manager.filter(pk__in=list(before), **{f"{field}__in": sources}).update(
            **{field: target}, **(values or {})
        )
        content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
        actor_id = getattr(actor, "pk", None)
        AuditRecord.objects.bulk_create(
            AuditRecord(
                content_type=content_type,
                object_id=str(pk),
                action=name,
                from_state=state,
                to_state=target,
                actor_id=actor_id,
                reason=reason or "",
                details=dict(details or {}),
            )
            for pk, state in before.items()
        )
    return list(before)
