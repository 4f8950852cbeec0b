"""One way to run a django_fsm transition: locked, permission-checked, audited.

Services call `apply_transition`; admin buttons and views call services.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django_fsm import TransitionNotAllowed, can_proceed, has_transition_perm

from .models import AuditRecord


class WorkflowError(ValidationError):
    """A transition that is not allowed from the current state or by its conditions."""


def record_audit(obj, *, action, actor=None, reason="", from_state="", to_state="", **details):
    from django.contrib.contenttypes.models import ContentType

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


def _state_field(obj, method):
    return method._django_fsm.field.name


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
            raise WorkflowError(f"Unknown transition {name!r}.", code="unknown_transition")
        field = _state_field(locked, method)
        before = getattr(locked, field)
        if not can_proceed(method, check_conditions=False):
            raise WorkflowError(
                f"Cannot {name.replace('_', ' ')} from state {before!r}.", code="wrong_state"
            )
        if actor is not None and check_permission and not has_transition_perm(method, actor):
            if not can_proceed(method):
                raise WorkflowError(
                    f"The conditions to {name.replace('_', ' ')} are not met.", code="conditions"
                )
            raise PermissionDenied(f"You are not allowed to {name.replace('_', ' ')}.")
        try:
            method(**kwargs)
        except TransitionNotAllowed as exc:
            raise WorkflowError(str(exc), code="conditions")
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
