"""Money parsing at the edges: CNY only, bounded decimal places, positive."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from djmoney.money import Money

CNY = "CNY"
FEN = Decimal("0.01")
MICRO = Decimal("0.000001")
# Plain decimal notation in ASCII digits only: "1e2", "1,000", "１００" or "٥" are refused
# rather than guessed at (Python's Decimal would read the last two as 100 and 5).
_PLAIN_DECIMAL = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$", re.ASCII)
LEDGER_PLACES = 6
PAYMENT_PLACES = 2


def zero():
    return Money(0, CNY)


def is_plain_decimal(value) -> bool:
    """True for a plain number string (`100`, `99.50`), False for `1e2`, `0x10`, `Infinity`
    or `1_000`: forms with a decimal field refuse what parse_amount refuses (issue 24)."""
    return isinstance(value, str) and bool(_PLAIN_DECIMAL.fullmatch(value.strip()))


def parse_amount(value, *, places=PAYMENT_PLACES, currency=CNY, allow_zero=False):
    """Return Money for a user- or channel-supplied amount, or raise ValidationError.

    Refuses other currencies, more decimals than `places`, non-finite,
    negative and (unless allowed) zero amounts. Never goes through float.
    """
    if isinstance(value, Money):
        currency = str(value.currency)
        value = value.amount
    if currency != CNY:
        raise ValidationError(
            _("Only CNY is accepted, not %(currency)s.") % {"currency": currency},
            code="wrong_currency",
        )
    if isinstance(value, float):
        raise ValidationError(_("Amounts must be given as decimal strings."), code="invalid_amount")
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value.strip()):
        raise ValidationError(
            _("Write the amount as a plain number, e.g. 100 or 99.50."), code="invalid_amount"
        )
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(_("Not a valid amount."), code="invalid_amount")
    if not amount.is_finite():
        raise ValidationError(_("Not a valid amount."), code="invalid_amount")
    if -amount.as_tuple().exponent > places:
        raise ValidationError(
            _("At most %(places)s decimal places are allowed.") % {"places": places},
            code="too_many_decimals",
        )
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationError(
            _("The amount must be greater than zero."), code="non_positive_amount"
        )
    return Money(amount, CNY)


def display(amount):
    """Two places, rounded half-up, for pages (R-LED-3); the exact figure goes in a title."""
    if isinstance(amount, Money):
        amount = amount.amount
    return Decimal(amount).quantize(FEN, rounding=ROUND_HALF_UP)


def yuan(amount, places=2) -> str:
    """Money as pages show it (issue 15): "¥1,234.50", "-¥0.75"; `places=6` for the exact
    figure. Half-up rounding like `display`."""
    if isinstance(amount, Money):
        amount = amount.amount
    value = Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}¥{abs(value):,.{places}f}"
