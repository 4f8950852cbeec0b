"""Money that finance sees arrive (R-TOP-1, R-ACC-8, R-ADM-4): bank remittances confirmed
by hand, amounts in review, manual ("other" channel) top-ups, and TopUp's transition map.

Four eyes (R-ADM-4): money that enters without a payment notification is never
credited by one person. A manual payment, a differing amount that finance propose
to credit, and any hand-confirmed amount above settings.TOPUP_FOUR_EYES_LIMIT wait
in `approval` until a second finance approver approves them; the approver is never
the proposer nor the beneficiary, and no staff member confirms money for their own
account.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.standing import Action
from billing.models import Channel
from core.money import parse_amount
from core.workflow import WorkflowError, apply_transition, transition_map

from ..models import TopUp, TopUpState
from .orders import cancel_topup_transition, credit_paid_topup, start_topup
from .payers import is_third_party
from .preconditions import FINANCE_PERM


def four_eyes_limit():
    """Above this amount (CNY) every hand-confirmed credit needs a second approver."""
    return Decimal(str(getattr(settings, "TOPUP_FOUR_EYES_LIMIT", "10000.00")))


def _refuse_own_money(topup, actor):
    """R-ADM-4: staff never confirm, propose or approve money for their own account."""
    if actor is not None and actor.pk == topup.account.user_id:
        raise WorkflowError(
            _(
                "You cannot confirm or approve money for your own account; another finance "
                "staff member must."
            ),
            code="own_case",
        )


def confirm_remittance(
    topup,
    *,
    actor,
    received_amount,
    payer_name,
    payer_account,
    bank_reference,
    reason="",
):
    """Finance confirms money seen on the platform's account (bank / other channel).

    A received amount equal to the order credits it now; a different one goes
    to `review` and credits nothing. A top-up is confirmed once.
    """
    if actor is None or not actor.has_perm(FINANCE_PERM):
        raise PermissionDenied(_("Only finance staff confirm remittances."))
    received = parse_amount(received_amount)
    bank_reference = (bank_reference or "").strip()
    if not bank_reference:
        raise ValidationError(_("The bank's transaction reference is required."), code="required")
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().select_related("account__user").get(pk=topup.pk)
        if locked.channel == Channel.ALIPAY:
            raise WorkflowError(_("Alipay top-ups are confirmed by Alipay."), code="wrong_channel")
        _refuse_own_money(locked, actor)
        if locked.state != TopUpState.CREATED:
            raise WorkflowError(
                f"This top-up is already {locked.get_state_display().lower()}; "
                "a remittance is confirmed once.",
                code="wrong_state",
            )
        if (
            TopUp.objects.filter(channel=locked.channel, trade_no=bank_reference)
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise WorkflowError(
                _("This bank transaction reference already confirmed another top-up."),
                code="duplicate_reference",
            )
        details = {
            "received_amount": received,
            "payer_name": payer_name.strip(),
            "payer_account": payer_account.strip(),
            "bank_reference": bank_reference,
            "third_party": is_third_party(locked.account.user, payer_name),
        }
        if received != locked.amount:
            return apply_transition(
                locked, "send_to_review", actor=actor, reason=reason or "amount differs", **details
            )
        if not locked.account.may(Action.TOP_UP):
            # Money arrived for an account that may not top up now (R-ACC-8: frozen or
            # terminated): never credited silently; finance decides in review.
            standing = locked.account.get_standing_display().lower()
            return apply_transition(
                locked,
                "send_to_review",
                actor=actor,
                reason=f"account is {standing}; {reason}".strip("; "),
                **details,
            )
        if locked.channel == Channel.OTHER or received.amount > four_eyes_limit():
            # No payment notification behind it, or above the limit: a proposal only.
            return apply_transition(
                locked,
                "propose_credit",
                actor=actor,
                reason=reason or "awaits a second approver",
                proposer=actor,
                **details,
            )
        credit_paid_topup(
            locked,
            transition="confirm_remittance",
            actor=actor,
            reason=reason,
            amount=received,
            **details,
        )
    topup.refresh_from_db()
    return topup


def record_manual_topup(user, amount, *, actor, payer_name, payer_account, reference, reason):
    """Finance records money received outside Alipay and bank transfer (channel "other").

    The user's preconditions apply as for any top-up; the order is created and
    proposed in one transaction, and credited only when a second finance approver
    approves it (approve_credit, R-ADM-4).
    """
    if actor is None or not actor.has_perm(FINANCE_PERM):
        raise PermissionDenied(_("Only finance staff record manual top-ups."))
    if actor.pk == user.pk:
        raise WorkflowError(
            _("Not for your own account: another finance staff member must record this payment."),
            code="own_case",
        )
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason."), code="required")
    with transaction.atomic():
        topup = start_topup(user, amount, channel=Channel.OTHER, actor=actor)
        return confirm_remittance(
            topup,
            actor=actor,
            received_amount=amount,
            payer_name=payer_name,
            payer_account=payer_account,
            bank_reference=reference,
            reason=reason,
        )


def _refuse_standing(locked):
    if not locked.account.may(Action.TOP_UP):
        raise WorkflowError(
            f"The account is {locked.account.get_standing_display().lower()} and may not "
            "receive top-ups now (R-ACC-8); return the money to the payer instead.",
            code="standing",
        )


def resolve_review(topup, name, *, actor, reason):
    """Finance settle a top-up whose received amount differed: propose to credit what came
    (a second approver then approves it, R-ADM-4), or return it to the payer."""
    if name not in ("credit_received", "return_to_payer"):
        raise WorkflowError(f"Unknown resolution {name!r}.", code="unknown_transition")
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason."), code="required")
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().select_related("account__user").get(pk=topup.pk)
        if locked.state != TopUpState.REVIEW:
            raise WorkflowError(_("This top-up is not in review."), code="wrong_state")
        if name == "return_to_payer":
            apply_transition(locked, name, actor=actor, reason=reason)
        else:
            _refuse_own_money(locked, actor)
            _refuse_standing(locked)
            apply_transition(locked, name, actor=actor, reason=reason, proposer=actor)
    topup.refresh_from_db()
    return topup


def credit_received(topup, *, actor, reason="", **form_data):
    """Finance propose to credit the amount actually received on a top-up in review."""
    return resolve_review(topup, "credit_received", actor=actor, reason=reason)


def return_to_payer(topup, *, actor, reason="", **form_data):
    """Finance send the money of a top-up in review back to the payer."""
    return resolve_review(topup, "return_to_payer", actor=actor, reason=reason)


def approve_credit(topup, *, actor, reason="", **form_data):
    """The second finance approver credits a proposed top-up (R-ADM-4).

    Refused for the proposer, for the beneficiary, and for an account that may not
    receive top-ups now (R-ACC-8). The lot, the promotion and the user's notice
    follow in the same transaction, as for any paid top-up.
    """
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason."), code="required")
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().select_related("account__user").get(pk=topup.pk)
        if locked.state != TopUpState.APPROVAL:
            raise WorkflowError(_("This top-up awaits no approval."), code="wrong_state")
        if actor is None or actor.pk == locked.proposed_by_id:
            raise WorkflowError(
                _("Four eyes: you proposed this credit; another finance approver must approve it."),
                code="four_eyes",
            )
        _refuse_own_money(locked, actor)
        _refuse_standing(locked)
        credit_paid_topup(
            locked,
            transition="approve_credit",
            actor=actor,
            reason=reason,
            amount=locked.credited_amount,
            approver=actor,
        )
    topup.refresh_from_db()
    return topup


def decline_credit(topup, *, actor, reason="", **form_data):
    """The second approver declines a proposed credit: back to review (R-ADM-4)."""
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason."), code="required")
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().select_related("account__user").get(pk=topup.pk)
        if locked.state != TopUpState.APPROVAL:
            raise WorkflowError(_("This top-up awaits no approval."), code="wrong_state")
        apply_transition(locked, "decline_credit", actor=actor, reason=reason)
    topup.refresh_from_db()
    return topup


# TopUp's one map: finance's transitions, plus the order's cancel (orders.py). The others
# have no button: pay (alipay_notifications.py), send_to_review and propose_credit
# (confirm_remittance above), expire (orders.expire_unpaid_topups), mark_refunded
# (refunds.services.payouts).
transition_map(
    TopUp,
    {
        "confirm_remittance": confirm_remittance,
        "credit_received": credit_received,
        "approve_credit": approve_credit,
        "decline_credit": decline_credit,
        "return_to_payer": return_to_payer,
        "cancel": cancel_topup_transition,
    },
)
