"""Small helpers the refund services share."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from accounts.models import Standing
from accounts.standing import Action, may
from billing.micro import from_micro
from core.workflow import WorkflowError
from notices.services import send_notice

from ..models import RefundRequest


def refuse_standing(standing):
    """R-ACC-8: a refund is filed and approved only when the standing allows it (the one
    table, accounts.standing: not locked, frozen or terminated)."""
    if not may(standing, Action.REQUEST_REFUND):
        label = Standing(standing).label.lower()
        raise ValidationError(
            _("The account is %(standing)s: no refund can be filed or approved now.")
            % {"standing": label},
            code="standing",
        )


def tell(refund, kind, *, key_suffix="", **context):
    """The user's notice of one event of this request (once: dedupe key per event)."""
    return send_notice(
        user=refund.account.user,
        kind=kind,
        context={
            "request": refund.pk,
            "amount": from_micro(refund.refunded_micro or refund.held_micro),
            **context,
        },
        dedupe_key=f"{kind}:{refund.pk}{key_suffix}",
    )


def refuse_own_refund(refund, actor):
    """R-ADM-4: staff never review, approve, reject or pay out a refund of their own account."""
    if actor is None or getattr(actor, "pk", None) is None:
        return
    owner = (
        RefundRequest.objects.filter(pk=refund.pk)
        .values_list("account__user_id", flat=True)
        .first()
    )
    if owner == actor.pk:
        raise WorkflowError(
            _("You cannot decide a refund of your own account; another staff member must."),
            code="own_case",
        )
