"""Who is calling and may they consume: API key resolution and authorization
(R-USE-1, R-ACC-6, R-ACC-8).

`consumption_refusal` is the one rule that stops a key or an account from
consuming: the key's state here (R-ACC-6), the account's standing from the standing
table (accounts.standing, `Action.CONSUME`, R-ACC-8). `authorize` and ingestion
(billing.services.metering) ask it with the standing read with the key; `charge_usage`
(billing.services.settlement) and purchases (billing.services.purchases) ask it again
on the standing read under the account's row lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_noop
from djmoney.money import Money

from accounts.models import ApiKeyState
from accounts.selectors import gateway_keys
from accounts.services import mark_api_key_used
from accounts.standing import Action, refusal_code

from ..micro import from_micro, to_micro
from .engine import LedgerError

KEY_CODES = {ApiKeyState.REVOKED: "key_revoked", ApiKeyState.LOCKED: "key_locked"}

# English msgids: the gateway translates them for the caller (billing.api._say)
REFUSAL_MESSAGES = {
    "key_revoked": gettext_noop("This API key was revoked."),
    "key_locked": gettext_noop("This API key is locked by the platform."),
    "account_suspended": gettext_noop("The account is suspended."),
    "account_locked": gettext_noop("The account is locked (third-party dispute)."),
    "account_frozen": gettext_noop("The account is frozen by order of an authority."),
    "account_terminated": gettext_noop("The account is terminated."),
    "account_refused": gettext_noop(
        "The account may not use the API."
    ),  # a standing the table lacks
    "spend_limit_exceeded": gettext_noop("A hard spend limit is reached until its period ends."),
}


def consumption_refusal(key_state, standing):
    """The stable code that stops a key or account from consuming, or None.

    R-ACC-6: a locked or revoked key is refused; R-ACC-8: an account consumes only when
    its standing allows `Action.CONSUME` (accounts.standing: only an active account).
    Authorization, ingestion, `charge_usage` and purchases all ask here.
    """
    return KEY_CODES.get(key_state) or refusal_code(standing, Action.CONSUME)


def refuse(code):
    """Raise the refusal `code` as a LedgerError with its message."""
    raise LedgerError(REFUSAL_MESSAGES.get(code, "This call may not be charged."), code=code)


class KeyRef:
    """What the gateway needs to know about an API key and its account, read in one
    query without building ORM instances (the batch resolves thousands at once).

    `standing` is as read with the key; `charge_usage` decides on the standing it reads
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
    limit: dict | None = None  # spend_limit_exceeded: which limit, and when it resets


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


def money_figures(account_id, now=None) -> tuple[int, int, int]:
    """(spendable, arrears, unsettled) in micro-units for one account, one query:
    spendable excludes grants past their expiry, arrears is what the account owes,
    unsettled is the usage received and not settled yet."""
    with connection.cursor() as cur:
        cur.execute(_FIGURES, {"a": account_id, "now": now or timezone.now()})
        return figures_from(cur.fetchone())


def figures_from(row) -> tuple[int, int, int]:
    """_FIGURES' four columns → (spendable, arrears, unsettled); the balance API reads
    them inside a larger statement (billing.selectors.balance_api_figures)."""
    spendable, arrears, dead, unsettled = row[:4]
    return int(spendable) - int(dead), -int(arrears), int(unsettled)


# authorize's own round trip: the figures above plus, in the same statement, the key's
# pending usage, the hard spend limits of the account and the key (R-USE-7; their
# settled counters are on the limit rows, kept by settlement) and, when the gateway
# names the model, the unused face value of the packages covering it (R-PKG-3).
_AUTH_FIGURES = """
SELECT
  (SELECT COALESCE(SUM(balance_micro), 0) FROM billing_ledgeraccount
    WHERE owner_id = %(a)s AND kind IN ('cash', 'trial', 'discount')),
  (SELECT COALESCE(SUM(balance_micro), 0) FROM billing_ledgeraccount
    WHERE owner_id = %(a)s AND kind = 'arrears'),
  (SELECT COALESCE(SUM(remaining_micro), 0) FROM billing_grant
    WHERE account_id = %(a)s AND state = 'active' AND remaining_micro > 0
      AND expires_at <= %(now)s),
  u.total, u.by_key,
  (SELECT json_agg(json_build_array(id, api_key_id, period, limit_micro, period_start,
                                    spent_micro) ORDER BY api_key_id NULLS FIRST, period)
     FROM billing_spendlimit
    WHERE account_id = %(a)s AND hard AND (api_key_id IS NULL OR api_key_id = %(k)s)),
  (SELECT COALESCE(SUM(remaining_micro), 0) FROM billing_packageholding
    WHERE %(m)s::text IS NOT NULL AND account_id = %(a)s AND state = 'active'
      AND expires_at > %(now)s AND models_covered @> jsonb_build_array(%(m)s::text))
FROM (SELECT COALESCE(SUM(amount_micro), 0) AS total,
             COALESCE(SUM(amount_micro) FILTER (WHERE api_key_id = %(k)s), 0) AS by_key
        FROM billing_usageevent WHERE account_id = %(a)s AND transaction_id IS NULL) u
"""


def authorize(api_key, model: str | None = None) -> Authorization:
    """May this key call a model now? Refusal codes are stable (R-USE-1).

    Standing and key state come from the query that resolved the key, at request time
    (never cached: a lock, freeze, suspension or revocation is refused from its commit,
    R-USE-6). The amount is available minus unsettled usage, so it lags at most by
    what is in flight. Takes a KeyRef (from resolve_api_keys) or an accounts.ApiKey;
    None is an unknown key. The key's last use is stamped by the accounts service
    (`mark_api_key_used`: at most once a minute, without waiting for the WAL flush).
    """
    if api_key is None:
        return Authorization(False, "unknown_api_key", from_micro(0))
    standing = api_key.standing if isinstance(api_key, KeyRef) else api_key.account.standing
    now = timezone.now()
    mark_api_key_used(api_key.pk, at=now)
    with connection.cursor() as cur:
        cur.execute(
            _AUTH_FIGURES, {"a": api_key.account_id, "k": api_key.pk, "now": now, "m": model}
        )
        spendable, arrears, dead, unsettled, key_unsettled, limits, packaged = cur.fetchone()
    # R-PKG-3: the named model's packages can pay too (pending usage may draw on them)
    spendable = int(spendable) - int(dead) + int(packaged)
    result = verdict(api_key.state, standing, spendable, -int(arrears), int(unsettled))
    if result.allowed and limits:
        from .limits import hard_limit_refusal

        if isinstance(limits, str):
            limits = json.loads(limits)
        limit = hard_limit_refusal(limits, int(unsettled), int(key_unsettled), now)
        if limit is not None:  # R-USE-7
            result.allowed, result.code, result.limit = False, "spend_limit_exceeded", limit
    return result


def verdict(key_state, standing, spendable, arrears, unsettled) -> Authorization:
    """The answer `authorize` gives for these figures (money_figures'), without reading
    anything: the user's balance API (billing.me_api, issue 27) asks it too, so its
    `is_available` is what `authorize` would answer for the same key."""
    left = spendable - arrears - unsettled
    available = from_micro(max(0, left))
    code = consumption_refusal(key_state, standing)
    if code is None and arrears > 0:
        code = "arrears"
    if code is None and left <= 0:
        code = "insufficient_balance"
    return Authorization(code is None, code or "ok", available)
