from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from djmoney.money import Money

from core.money import display, parse_amount


@pytest.mark.parametrize(
    ("value", "kwargs", "code"),
    [
        ("10.00", {"currency": "USD"}, "wrong_currency"),
        (Money("10.00", "USD"), {}, "wrong_currency"),
        ("10.001", {}, "too_many_decimals"),
        ("0.0000001", {"places": 6}, "too_many_decimals"),
        ("-5.00", {}, "non_positive_amount"),
        ("0", {}, "non_positive_amount"),
        ("0.00", {}, "non_positive_amount"),
        (10.5, {}, "invalid_amount"),
        ("1e2", {}, "invalid_amount"),
        ("1,000.00", {}, "invalid_amount"),
        ("NaN", {}, "invalid_amount"),
        ("Infinity", {}, "invalid_amount"),
        ("", {}, "invalid_amount"),
        ("ten", {}, "invalid_amount"),
    ],
)
def test_bad_amounts_get_a_clear_error_code(value, kwargs, code):
    """R-LED-3: CNY only, whole fen for payments, 6 places for usage, positive, no floats."""
    with pytest.raises(ValidationError) as exc:
        parse_amount(value, **kwargs)
    assert exc.value.code == code


def test_good_amounts_become_cny_money():
    """R-LED-3: plain decimals within the allowed places are accepted exactly."""
    assert parse_amount(" 99.50 ") == Money(Decimal("99.50"), "CNY")
    assert parse_amount("0.000001", places=6).amount == Decimal("0.000001")
    assert parse_amount(Decimal("12.3")) == Money("12.30", "CNY")
    assert parse_amount("0", allow_zero=True).amount == 0


def test_pages_round_half_up_to_two_places():
    """R-LED-3: pages show 2 places rounded half-up (the exact figure goes in a title)."""
    assert display(Decimal("19.985")) == Decimal("19.99")
    assert display(Decimal("19.984999")) == Decimal("19.98")
    assert display(Money("0.005", "CNY")) == Decimal("0.01")
