"""Fen rounding of micro-units only through billing.micro (R-LED-3): refunds and invoices
are whole fen, usage is priced in micro-units."""

import pytest

from billing.micro import FEN_MICRO, ceil_fen, floor_fen


@pytest.mark.parametrize(
    "micro, down, up",
    [
        (0, 0, 0),
        (1, 0, FEN_MICRO),
        (9_999, 0, FEN_MICRO),
        (10_000, 10_000, 10_000),
        (19_999_995, 19_990_000, 20_000_000),
        (-1, -FEN_MICRO, 0),
    ],
)
def test_floor_and_ceil_to_whole_fen(micro, down, up):
    assert floor_fen(micro) == down and ceil_fen(micro) == up
