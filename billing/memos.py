"""Statement memos in the reader's language (issue 22).

A ledger transaction stores what happened: its kind and a memo whose text the writing
service composes from fixed English phrases and parameters ("Top-up T2026…", "usage: 3
events", "Refund paid via alipay"). The books are append-only (R-LED-2), so the stored
text is never rewritten; it is the record of the parameters. Pages and CSVs render it
here, at display time: each known phrase becomes its words in the active language with
its parameters kept (order numbers, channels as words); a memo staff typed (a reason)
is shown as written. Bucket names are words too (`bucket_name`: "退款冻结", never "hold").
"""

import re

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .models import AccountKind, Channel, GrantKind


def _channel(value: str) -> str:
    try:
        return str(Channel(value).label)
    except ValueError:
        return value


def _grant_kind(value: str) -> str:
    try:
        return str(GrantKind(value).label)
    except ValueError:
        return value


def bucket_name(key: str) -> str:
    """A bucket's name as words in the active language ("hold" → "Refund hold"); what
    the user owes in the user's words, not the books' ("Arrears receivable")."""
    if key == "arrears":
        return _("Arrears")
    if key == "dispute_debt":
        return _("Dispute debt")
    try:
        return str(AccountKind(key).label)
    except ValueError:
        return key


# (pattern on the stored memo, words with the pattern's groups) — first match wins.
_PHRASES = [
    (
        re.compile(r"usage: (\d+) events?"),
        lambda m: (
            ngettext("Usage: %(count)s call", "Usage: %(count)s calls", int(m[1])) % {"count": m[1]}
        ),
    ),
    (
        re.compile(r"Top-up via (\w+)"),
        lambda m: _("Top-up via %(channel)s") % {"channel": _channel(m[1])},
    ),
    (re.compile(r"Top-up (\S+)"), lambda m: _("Top-up %(order)s") % {"order": m[1]}),
    (
        re.compile(r"(.+) for top-up (\S+)"),
        lambda m: _("%(promotion)s for top-up %(order)s") % {"promotion": m[1], "order": m[2]},
    ),
    (
        re.compile(r"(\w+) grant"),
        lambda m: _("%(kind)s granted") % {"kind": _grant_kind(m[1])},
    ),
    (re.compile(r"Trial funds"), lambda m: _("Trial funds")),
    (re.compile(r"Refund hold"), lambda m: _("Refund hold")),
    (re.compile(r"Refund hold released"), lambda m: _("Refund hold released")),
    (re.compile(r"Refund approved"), lambda m: _("Refund approved")),
    (
        re.compile(r"Refund paid via (\w+)"),
        lambda m: _("Refund paid via %(channel)s") % {"channel": _channel(m[1])},
    ),
    (
        re.compile(r"Refund by bank transfer (.+)"),
        lambda m: _("Refund by bank transfer %(reference)s") % {"reference": m[1]},
    ),
    (
        re.compile(r"Alipay refund (.+)"),
        lambda m: _("Alipay refund %(reference)s") % {"reference": m[1]},
    ),
    (
        re.compile(r"credit back (.+)"),
        lambda m: _("Call %(request)s credited back") % {"request": m[1]},
    ),
    (
        re.compile(r"Dispute deadline: refund to the rights holder"),
        lambda m: _("Dispute deadline: refund to the rights holder"),
    ),
    (re.compile(r"Dispute debt ended"), lambda m: _("Dispute debt ended")),
    (
        re.compile(r"Paid to the rights holder via (\w+)"),
        lambda m: _("Paid to the rights holder via %(channel)s") % {"channel": _channel(m[1])},
    ),
    (
        re.compile(r"Dispute #(\d+): (.+)"),
        lambda m: _("Dispute #%(dispute)s: %(detail)s") % {"dispute": m[1], "detail": m[2]},
    ),
    (
        re.compile(r"Bank transfer (.+)"),
        lambda m: _("Bank transfer %(reference)s") % {"reference": m[1]},
    ),
]


def memo_text(memo: str) -> str:
    """The stored memo in words of the active language (free text as written)."""
    memo = memo or ""
    for pattern, words in _PHRASES:
        match = pattern.fullmatch(memo)
        if match:
            return words(match)
    return memo
