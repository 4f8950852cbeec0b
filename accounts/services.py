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


@transaction.atomic
def create_api_key(user, *, name):
    """Create a key for the user's account; returns (ApiKey, raw secret shown once)."""
    from .api_keys import new_key_material
    from .models import ApiKey

    raw, prefix, secret_hash = new_key_material()
    key = ApiKey.objects.create(
        account=user.balance_account,
        name=name.strip()[:100] or "key",
        prefix=prefix,
        secret_hash=secret_hash,
    )
    return key, raw


def resolve_api_key(raw_key):
    """The gateway's lookup: the key with its account and user, or None. One query."""
    from .api_keys import hash_secret
    from .models import ApiKey

    if not raw_key or not isinstance(raw_key, str) or len(raw_key) > 200:
        return None
    return (
        ApiKey.objects.select_related("account", "account__user")
        .filter(secret_hash=hash_secret(raw_key))
        .first()
    )
