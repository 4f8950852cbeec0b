"""Who is calling and may they consume: API key resolution and authorization
(R-USE-1, R-ACC-6, R-ACC-8).

`consumption_refusal` is the one rule that stops a key or an account from
consuming; authorization asks it here, and charging and purchases ask it again
under the account's lock (billing.services.charging, billing.services.purchases).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.utils import timezone
from djmoney.money import Money

from accounts.models import ApiKeyState, Standing
from accounts.selectors import gateway_keys
from accounts.services import API_KEY_USE_GRANULARITY, mark_api_key_used

from ..micro import from_micro, to_micro
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


# One round trip for the money side of an answer: the spendable buckets and arrears (the
# cached balances), grants past their expiry that the sweep has not ended yet (dead
# money, R-USE-6), and the usage received but not settled yet (R-USE-5; the partial
# index billing_charge_pending_acct holds only pending rows, so this reads seconds of
# traffic, not the account's history).
_FIGURES = """
SELECT
  (SELECT COALESCE(SUM(balance_micro), 0) FROM billing_ledgeraccount
    WHERE owner_id = %(a)s AND kind IN ('cash', 'trial', 'discount')),
  (SELECT COALESCE(SUM(balance_micro), 0) FROM billing_ledgeraccount
    WHERE owner_id = %(a)s AND kind = 'arrears'),
  (SELECT COALESCE(SUM(remaining_micro), 0) FROM billing_grant
    WHERE account_id = %(a)s AND state = 'active' AND remaining_micro > 0
      AND expires_at <= %(now)s),
  (SELECT COALESCE(SUM(amount_micro), 0) FROM billing_usageevent
    WHERE account_id = %(a)s AND transaction_id IS NULL)
"""


# authorize on PostgreSQL: the key's last use is stamped in the same round trip as the
# figures are read (accounts.services.mark_api_key_used's rule: at most once a minute),
# and that commit does not wait for the WAL flush: a last-used time lost in a crash is
# harmless, and a flush per answer would bound authorize by the disk's fsync rate.
_MARK_USED = """
WITH used AS (
    UPDATE accounts_apikey SET last_used_at = %(now)s
     WHERE id = %(k)s AND (last_used_at IS NULL OR last_used_at < %(since)s)
    RETURNING set_config('synchronous_commit', 'off', true)
)
"""


def money_figures(account_id, now=None, *, mark_key_id=None) -> tuple[int, int, int]:
    """(spendable, arrears, unsettled) in micro-units for one account, one query:
    spendable excludes grants past their expiry, arrears is what the account owes,
    unsettled is the usage received and not settled yet. With `mark_key_id`
    (PostgreSQL, outside a transaction) the same statement records that key's use."""
    now = now or timezone.now()
    params = {"a": account_id, "now": connection.ops.adapt_datetimefield_value(now)}
    sql = _FIGURES
    if mark_key_id is not None:
        params.update(k=mark_key_id, since=now - API_KEY_USE_GRANULARITY)
        sql = _MARK_USED + _FIGURES
    with connection.cursor() as cur:
        cur.execute(sql, params)
        spendable, arrears, dead, unsettled = cur.fetchone()
    return int(spendable) - int(dead), -int(arrears), int(unsettled)


def authorize(api_key) -> Authorization:
    """May this key call a model now? Refusal codes are stable (R-USE-1).

    Standing and key state come from the query that resolved the key, at request time
    (never cached: a lock, freeze, suspension or revocation is refused from its commit,
    R-USE-6). The amount is available minus unsettled usage, so it lags at most by
    what is in flight. Takes a KeyRef (from resolve_api_keys) or an accounts.ApiKey;
    None is an unknown key.
    """
    if api_key is None:
        return Authorization(False, "unknown_api_key", from_micro(0))
    standing = api_key.standing if isinstance(api_key, KeyRef) else api_key.account.standing
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        spendable, arrears, unsettled = money_figures(api_key.account_id, mark_key_id=api_key.pk)
    else:
        mark_api_key_used(api_key.pk)
        spendable, arrears, unsettled = money_figures(api_key.account_id)
    left = spendable - arrears - unsettled
    available = from_micro(max(0, left))
    code = consumption_refusal(api_key.state, standing)
    if code is None and arrears > 0:
        code = "arrears"
    if code is None and left <= 0:
        code = "insufficient_balance"
    return Authorization(code is None, code or "ok", available)
