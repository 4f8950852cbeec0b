"""A balance account's standing and low-balance threshold (R-ACC-8, R-USE-4)."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop
from djmoney.money import Money

from core.money import parse_amount
from core.workflow import WorkflowError, apply_transition, transition_map
from notices.services import send_notice

from ..models import (
    BalanceAccount,
)
from ._common import refuse_own_case

STANDING_TRANSITIONS = (
    "suspend",
    "reinstate",
    "lock",
    "unlock",
    "freeze",
    "unfreeze",
    "terminate",
)


def change_standing(account, transition_name, *, actor=None, reason="", **kwargs):
    """Move a balance account's standing (R-ACC-8); audited, permission-checked for staff.

    The user is told in the same transaction (R-NOT-1). The staff reason is
    internal and stays out of the notice; CS explain on request.
    """
    if transition_name not in STANDING_TRANSITIONS:
        raise WorkflowError(
            f"Unknown standing transition {transition_name!r}.", code="unknown_transition"
        )
    refuse_own_case(account.user_id, actor, gettext_noop("change the account's standing"))
    with transaction.atomic():
        account = apply_transition(account, transition_name, actor=actor, reason=reason, **kwargs)
        stamp = account.standing_changed_at or timezone.now()
        send_notice(
            user=account.user,
            kind="standing_changed",
            context={
                "standing": account.standing,
                "standing_label": account.get_standing_display(),
                "transition": transition_name,
            },
            dedupe_key=f"standing_changed:{account.pk}:{stamp.timestamp():.6f}",
        )
    return account


def _standing_service(name):
    def service(account, *, actor=None, reason="", **form_data):
        return change_standing(account, name, actor=actor, reason=reason, **form_data)

    service.__name__ = service.__qualname__ = f"{name}_balance_account"
    return service


transition_map(BalanceAccount, {name: _standing_service(name) for name in STANDING_TRANSITIONS})


def set_low_balance_threshold(account, threshold):
    """The user's low-balance threshold (R-USE-4): whole fen, CNY, > 0, or None to
    turn the notice off. Written with a queryset update naming the currency column
    too (django-money's update_fields pitfall), leaving the standing FSM alone."""
    amount = parse_amount(threshold).amount if threshold is not None else None
    with transaction.atomic():
        BalanceAccount.objects.filter(pk=account.pk).update(
            low_balance_threshold=amount, low_balance_threshold_currency="CNY"
        )
    account.low_balance_threshold = Money(amount, "CNY") if amount is not None else None
    return account
