"""API keys: creation, revocation, staff locks and last use (R-ACC-6)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from core.workflow import WorkflowError, apply_transition, transition_map

from ..models import (
    ApiKey,
)
from ._common import refuse_own_case
from .registration import refuse_unverified_email


@transaction.atomic
def create_api_key(user, *, name):
    """Create a key for the user's account; returns (ApiKey, raw secret shown once)."""
    from ..api_keys import new_key_material

    refuse_unverified_email(user)
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
    from ..api_keys import hash_secret

    if not raw_key or not isinstance(raw_key, str) or len(raw_key) > 200:
        return None
    return (
        ApiKey.objects.select_related("account", "account__user")
        .filter(secret_hash=hash_secret(raw_key))
        .first()
    )


def revoke_api_key(user, key_id, *, reason="revoked by the user"):
    """The user revokes one of their own keys. Another user's key id is not found
    (ApiKey.DoesNotExist) and nothing changes (R-ACC-6)."""
    key = ApiKey.objects.get(pk=key_id, account__user_id=user.pk)
    return apply_transition(key, "revoke", actor=user, reason=reason)


API_KEY_STAFF_TRANSITIONS = ("lock", "unlock")


def change_api_key_state(key, transition_name, *, actor=None, reason="", **kwargs):
    """Platform lock / unlock of a key (R-ACC-6, §5.2); permission accounts.lock_apikey."""
    if transition_name not in API_KEY_STAFF_TRANSITIONS:
        raise WorkflowError(f"Unknown key transition {transition_name!r}.", code="unknown")
    owner = ApiKey.objects.filter(pk=key.pk).values_list("account__user_id", flat=True).first()
    refuse_own_case(owner, actor, "lock or unlock an API key")
    return apply_transition(key, transition_name, actor=actor, reason=reason)


def lock_api_key(key, *, actor=None, reason="", **form_data):
    return change_api_key_state(key, "lock", actor=actor, reason=reason)


def unlock_api_key(key, *, actor=None, reason="", **form_data):
    return change_api_key_state(key, "unlock", actor=actor, reason=reason)


# Users revoke their own keys from their pages (revoke_api_key); staff lock and unlock.
transition_map(ApiKey, {"lock": lock_api_key, "unlock": unlock_api_key})


API_KEY_USE_GRANULARITY = timedelta(minutes=1)


def mark_api_key_used(key_id, *, at=None):
    """Record when a key was last presented to the gateway (shown on the keys page).

    At most one write per key per minute: a conditional UPDATE, so the gateway's
    hot path does not write on every call.
    """
    from django.db.models import Q

    from ..models import ApiKey

    at = at or timezone.now()
    return (
        ApiKey.objects.filter(pk=key_id)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=at - API_KEY_USE_GRANULARITY))
        .update(last_used_at=at)
    )
