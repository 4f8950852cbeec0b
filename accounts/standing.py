"""What each account standing may do (R-ACC-8): the one table every service asks.

A standing is one field on the balance account (accounts.models.Standing); which actions
it allows lives here and nowhere else. Services ask `may(standing, action)` and refuse
with their own words; the gateway's stable refusal codes come from `refusal_code`.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    CONSUME = "consume", _("use the API")
    TOP_UP = "top_up", _("top up")
    REQUEST_REFUND = "request_refund", _("ask for a refund")
    REQUEST_INVOICE = "request_invoice", _("ask for an invoice")
    CREATE_KEY = "create_key", _("create an API key")


# standing → the actions it allows. Only an active account consumes or makes keys (a key
# it could not use would mislead); a dispute lock (locked) still lets the user top up, so
# a debt can be paid; frozen and terminated accounts move no money in or out.
ALLOWED = {
    "active": frozenset(Action),
    "suspended": frozenset({Action.TOP_UP, Action.REQUEST_REFUND}),
    "locked": frozenset({Action.TOP_UP}),
    "frozen": frozenset(),
    "terminated": frozenset(),
}

# The stable code a refusal carries (gateway answers, ledger errors), per standing.
REFUSAL_CODES = {
    "suspended": "account_suspended",
    "locked": "account_locked",
    "frozen": "account_frozen",
    "terminated": "account_terminated",
}


def may(standing: str, action: str) -> bool:
    """True when an account in `standing` may take `action` (an Action value)."""
    return action in ALLOWED.get(standing, frozenset())


def refusal_code(standing: str, action: str) -> str | None:
    """The stable refusal code when `standing` does not allow `action`, else None."""
    if may(standing, action):
        return None
    return REFUSAL_CODES.get(standing, "account_refused")
