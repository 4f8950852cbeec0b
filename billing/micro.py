"""Integer micro-units (1 CNY = 1,000,000) at the ledger's core, Money at the edges.

The posting table is the high-volume one: BIGINT micro-units are exact, half
the width of NUMERIC, sum fast in GROUP BY, and dodge django-money's pitfalls
(bulk_update/update_fields dropping the currency column, values() handing back
bare Decimals). Every value that leaves the ledger is turned back into Money.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from djmoney.money import Money

from core.money import CNY

MICRO_PER_UNIT = 1_000_000
FEN_MICRO = 10_000


def to_micro(value) -> int:
    """Money/Decimal → exact micro-units; refuses other currencies and sub-micro figures."""
    if isinstance(value, Money):
        if str(value.currency) != CNY:
            raise ValidationError(
                f"Only CNY is accepted, not {value.currency}.", code="wrong_currency"
            )
        value = value.amount
    if isinstance(value, float):
        raise ValidationError("Amounts must be Decimal, never float.", code="invalid_amount")
    scaled = Decimal(value) * MICRO_PER_UNIT
    if scaled != scaled.to_integral_value():
        raise ValidationError("At most 6 decimal places are allowed.", code="too_many_decimals")
    return int(scaled)


def from_micro(micro) -> Money:
    return Money(Decimal(int(micro or 0)).scaleb(-6).quantize(Decimal("0.000001")), CNY)


def floor_fen(micro: int) -> int:
    """Micro-units down to whole fen (the floor): what may be refunded or invoiced of
    an amount priced in micro-units."""
    micro = int(micro)
    return micro - micro % FEN_MICRO


def ceil_fen(micro: int) -> int:
    """Micro-units up to whole fen: a sub-fen debt or use taken as the next whole fen."""
    return -floor_fen(-int(micro))


def micro_str(micro: int) -> str:
    """Micro-units → a 6-place decimal string, without building Money (hot API paths)."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(int(micro)), MICRO_PER_UNIT)
    return f"{sign}{whole}.{frac:06d}"


class MicroMoney:
    """A model's micro-unit column read as Money: `held = MicroMoney("held_micro")`.

    One descriptor instead of a property per amount column in every app's models.
    """

    def __init__(self, column: str):
        self.column = column

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return from_micro(getattr(obj, self.column))
