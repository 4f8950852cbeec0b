"""Who is calling and may they consume: API key resolution and authorization
(R-USE-1, R-ACC-6, R-ACC-8).

`consumption_refusal` is the one rule that stops a key or an account from
consuming; authorization asks it here, and charging and purchases ask it again
under the account's lock (billing.services.charging, billing.services.purchases).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum
from django.utils import timezone
from djmoney.money import Money

from accounts.models import ApiKeyState, Standing
from accounts.selectors import gateway_keys
from accounts.services import mark_api_key_used

from ..micro import from_micro, to_micro
from ..models import Grant, GrantState, LedgerAccount
from .engine import LedgerError

STANDING_CODES = {
    Standing.SUSPENDED: "account_suspended",
    Standing.LOCKED: "account_locked",
    Standing.FROZEN: "account_frozen",
    Standing.TERMINATED: "account_terminated",
}
KEY_CODES = {ApiKeyState.REVOKED: "key_revoked", ApiKeyState.LOCKED: "key_locked"}

REFUSAL_MESSAGES = {
    "key_revoked": "This API key was revoked.",
    "key_locked": "This API key is locked by the platform.",
    "account_suspended": "The account is suspended.",
    "account_locked": "The account is locked (third-party dispute).",
    "account_frozen": "The account is frozen by order of an authority.",
    "account_terminated": "The account is terminated.",
}


def consumption_refusal(key_state, standing):
    """The stable code that stops a key or account from consuming, or None.

    R-ACC-6: a locked or revoked key is refused; R-ACC-8: only an active account
    consumes. Authorization, charging and purchases all ask here.
    """
    return KEY_CODES.get(key_state) or STANDING_CODES.get(standing)


def refuse(code):
    """Raise the refusal `code` as a LedgerError with its message."""
    raise LedgerError(REFUSAL_MESSAGES.get(code, "This call may not be charged."), code=code)


class KeyRef:
    """What charging needs to know about an API key and its account, read in one
    query without building ORM instances (the batch resolves thousands at once).

    `standing` is as read with the key; charging decides on the standing it reads
    again under the account's row lock."""

    __slots__ = ("pk", "account_id", "state", "standing", "threshold_micro")

    def __init__(self, pk, account_id, state, standing, threshold):
        self.pk, self.account_id, self.state, self.standing = pk, account_id, state, standing
        self.threshold_micro = to_micro(threshold) if threshold is not None else None


def resolve_api_keys(raw_keys) -> dict:
    """Many raw keys → {raw: KeyRef}, in one query through accounts.selectors.gateway_keys
    (unknown keys are simply absent)."""
    return {raw: KeyRef(*row) for raw, row in gateway_keys(raw_keys).items()}


@dataclass
class Authorization:
    allowed: bool
    code: str
    available: Money


def authorize(api_key) -> Authorization:
    """May this key call a model now? Refusal codes are stable (R-USE-1).

    Takes a KeyRef (from resolve_api_keys) or an accounts.ApiKey; None is an unknown key.
    """
    if api_key is None:
        return Authorization(False, "unknown_api_key", from_micro(0))
    mark_api_key_used(api_key.pk)
    standing = api_key.standing if isinstance(api_key, KeyRef) else api_key.account.standing
    rows = dict(
        LedgerAccount.objects.filter(owner_id=api_key.account_id).values_list(
            "kind", "balance_micro"
        )
    )
    # a grant past its expiry is dead whether or not the expiry job has swept it yet
    dead = (
        Grant.objects.filter(
            account_id=api_key.account_id,
            state=GrantState.ACTIVE,
            remaining_micro__gt=0,
            expires_at__lte=timezone.now(),
        ).aggregate(total=Sum("remaining_micro"))["total"]
        or 0
    )
    spendable = rows.get("cash", 0) + rows.get("trial", 0) + rows.get("discount", 0) - dead
    arrears = -rows.get("arrears", 0)
    available = from_micro(max(0, spendable - arrears))
    code = consumption_refusal(api_key.state, standing)
    if code is None and arrears > 0:
        code = "arrears"
    if code is None and spendable - arrears <= 0:
        code = "insufficient_balance"
    return Authorization(code is None, code or "ok", available)
