"""Account services: registration, balance accounts, standing (R-ACC-1, R-ACC-8)."""

from django.db import transaction

from core.workflow import apply_transition

from .models import BalanceAccount, User


def open_balance_account(user):
    account, _ = BalanceAccount.objects.get_or_create(user=user)
    return account


@transaction.atomic
def register_user(*, email, password, phone="", display_name=""):
    """Create a user; the balance account is opened in the same transaction."""
    return User.objects.create_user(
        email=email, password=password, phone=phone, display_name=display_name
    )


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
    """Move a balance account's standing; audited, permission-checked for staff.

    Other apps hook on the result (dispute locks keys, notices tell the user);
    those hooks are called from here so the rule stays in one place.
    """
    if transition_name not in STANDING_TRANSITIONS:
        raise ValueError(f"Unknown standing transition {transition_name!r}")
    return apply_transition(account, transition_name, actor=actor, reason=reason, **kwargs)
