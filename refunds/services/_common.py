"""Small helpers the refund services share."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from accounts.models import Standing
from billing.micro import from_micro
from core.workflow import WorkflowError
from notices.services import send_notice

from ..models import RefundRequest

# R-ACC-8 and issue 10: a locked, frozen or terminated account cannot refund.
NO_REFUND_STANDINGS = (Standing.LOCKED, Standing.FROZEN, Standing.TERMINATED)


def refuse_standing(standing):
    if standing in NO_REFUND_STANDINGS:
        label = Standing(standing).label.lower()
        raise ValidationError(
            _("The account is %(standing)s: no refund can be filed or approved now.")
            % {"standing": label},
            code="standing",
        )


def tell(request, kind, *, key_suffix="", **context):
    """The user's notice of one event of this request (once: dedupe key per event)."""
    return send_notice(
        user=request.account.user,
        kind=kind,
        context={
            "request": request.pk,
            "amount": from_micro(request.refunded_micro or request.held_micro),
            **context,
        },
        dedupe_key=f"{kind}:{request.pk}{key_suffix}",
    )


def refuse_own_refund(request, actor):
    """R-ADM-4: staff never review, approve, reject or pay out a refund of their own account."""
    if actor is None or getattr(actor, "pk", None) is None:
        return
    owner = (
        RefundRequest.objects.filter(pk=request.pk)
        .values_list("account__user_id", flat=True)
        .first()
    )
    if owner == actor.pk:
        raise WorkflowError(
            "You cannot decide a refund of your own account; another staff member must.",
            code="own_case",
        )
