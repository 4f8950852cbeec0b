"""API keys: creation, revocation, staff locks and last use (R-ACC-6)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from core.workflow import WorkflowError, apply_transition, transition_map

from ..models import (
    ApiKey,
)
from ._common import refuse_own_case
from .registration import refuse_unverified_email


@transaction.atomic
def create_api_key(user, *, name):
    """Create a key for the user's account; returns (ApiKey, raw secret shown once).

    Refused (ValidationError) for an unverified email address, and unless the account's
    standing may create keys (R-ACC-8, issue 22: the one table, accounts.standing; only
    an active account, since a key it could not use would mislead), with the standing's
    stable code (`account_suspended`, `account_locked`, `account_frozen`,
    `account_terminated`). The standing is read under the account's row lock, so a
    standing change committing meanwhile is never missed.
    """
    from django.core.exceptions import ValidationError
    from django.utils.translation import gettext as _

    from core.text import refuse_unsafe_characters

    from ..api_keys import new_key_material
    from ..models import Standing
    from ..selectors import lock_standings
    from ..standing import Action, may, refusal_code

    refuse_unsafe_characters(name)  # issue 24 point 7: what staff read is what it says
    refuse_unverified_email(user)
    account = user.balance_account
    standing = lock_standings([account.pk])[account.pk]
    if not may(standing, Action.CREATE_KEY):
        raise ValidationError(
            _("Your account is %(standing)s: no new API key can be created now.")
            % {"standing": Standing(standing).label.lower()},
            code=refusal_code(standing, Action.CREATE_KEY),
        )
    raw, prefix, secret_hash = new_key_material()
    key = ApiKey.objects.create(
        account=account,
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
    refuse_own_case(owner, actor, gettext_noop("lock or unlock the API key"))
    return apply_transition(key, transition_name, actor=actor, reason=reason)


def lock_api_key(key, *, actor=None, reason="", **form_data):
    return change_api_key_state(key, "lock", actor=actor, reason=reason)


def unlock_api_key(key, *, actor=None, reason="", **form_data):
    return change_api_key_state(key, "unlock", actor=actor, reason=reason)


# Users revoke their own keys from their pages (revoke_api_key); staff lock and unlock.
transition_map(ApiKey, {"lock": lock_api_key, "unlock": unlock_api_key})


API_KEY_USE_GRANULARITY = timedelta(minutes=1)


def mark_api_key_used(key_id, *, at=None) -> int:
    """Record when a key was last presented to the gateway (shown on the keys page);
    billing's `authorize` calls it on every answer. Returns 1 when it wrote, else 0.

    At most one write per key per minute: a conditional UPDATE, so the gateway's
    hot path does not write on every call. Outside a transaction (the gateway) that
    write is its own transaction and commits without waiting for the WAL flush
    (`synchronous_commit` off for that transaction only): a last-used time lost in a
    crash is harmless, and a flush per answer would bound `authorize` by the disk's
    fsync rate. Inside a caller's transaction it is a plain UPDATE that commits with it.
    """
    from django.db import connection
    from django.db.models import Q

    at = at or timezone.now()
    since = at - API_KEY_USE_GRANULARITY
    if not connection.in_atomic_block:
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE {ApiKey._meta.db_table} SET last_used_at = %s"  # noqa: S608 (constant)
                " WHERE id = %s AND (last_used_at IS NULL OR last_used_at < %s)"
                " RETURNING set_config('synchronous_commit', 'off', true)",
                [at, key_id, since],
            )
            return cur.rowcount
    return (
        ApiKey.objects.filter(pk=key_id)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=since))
        .update(last_used_at=at)
    )
