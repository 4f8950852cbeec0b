"""R-ACC-2 validators: GB 11643 resident ID numbers and GB 32100 credit codes."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from accounts.identity import (
    identity_hash,
    make_credit_code,
    make_resident_id,
    mask_name,
    mask_number,
    parse_credit_code,
    parse_resident_id,
    resident_id_check_char,
)


def _code(exc):
    return exc.value.error_list[0].code


@pytest.mark.parametrize(
    ("number", "birth", "sex"),
    [
        ("11010519491231002X", date(1949, 12, 31), "female"),  # the standard's own example
        ("11010519491231002x", date(1949, 12, 31), "female"),  # lower-case x accepted
        (" 110105199005171233 ", date(1990, 5, 17), "male"),
        ("440305200002290010", date(2000, 2, 29), "male"),  # leap day
    ],
)
def test_valid_resident_id_numbers_parse_with_birth_date(number, birth, sex):
    """R-ACC-2: valid GB 11643 numbers pass and yield the birth date."""
    parsed = parse_resident_id(number, today=date(2026, 1, 1))
    assert parsed.birth_date == birth
    assert parsed.sex == sex
    assert parsed.number == number.strip().upper()


def test_x_check_digit_is_computed_when_the_sum_leaves_two():
    """R-ACC-2: the check character 'X' stands for 10 (remainder 2)."""
    assert resident_id_check_char("11010519491231002") == "X"
    with pytest.raises(ValidationError) as exc:
        parse_resident_id("110105194912310020")  # X replaced by 0
    assert _code(exc) == "id_check_digit"


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("110105199005171234", "id_check_digit"),  # last digit off by one
        ("110105199005171232", "id_check_digit"),
        ("11010519900517123", "id_length"),
        ("1101051990051712333", "id_length"),
        ("", "id_length"),
        ("11010519900517A233", "id_characters"),
        ("X10105199005171233", "id_characters"),
        ("11010519900517123Y", "id_characters"),
        ("990105199005171233", "id_region"),
        ("110105199902311233", "id_birth_date"),  # 31 February
        ("110105199913011233", "id_birth_date"),  # month 13
        ("110105201902291233", "id_birth_date"),  # 2019 not a leap year
        ("110105180001011233", "id_birth_date"),  # implausibly old
    ],
)
def test_bad_resident_id_numbers_are_refused(number, code):
    """R-ACC-2: wrong length, characters, region, impossible dates, bad check digit."""
    with pytest.raises(ValidationError) as exc:
        parse_resident_id(number, today=date(2026, 1, 1))
    assert _code(exc) == code


def test_impossible_date_19990231_is_refused_even_with_a_matching_check_digit():
    """R-ACC-2: 1999-02-31 does not exist, whatever the check digit says."""
    first17 = "11010519990231123"
    with pytest.raises(ValidationError) as exc:
        parse_resident_id(first17 + resident_id_check_char(first17))
    assert _code(exc) == "id_birth_date"


def test_future_birth_date_is_refused():
    """R-ACC-2: a birth date after today is refused even with a correct check digit."""
    number = make_resident_id(date(2026, 6, 1))
    with pytest.raises(ValidationError) as exc:
        parse_resident_id(number, today=date(2026, 5, 31))
    assert _code(exc) == "id_future_birth_date"
    assert parse_resident_id(number, today=date(2026, 6, 1)).birth_date == date(2026, 6, 1)


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    seq=st.integers(min_value=0, max_value=999),
    wrong=st.integers(min_value=1, max_value=10),
)
def test_any_single_check_digit_change_is_caught(birth, seq, wrong):
    """R-ACC-2: every other check character than the right one is refused."""
    number = make_resident_id(birth, sequence=seq)
    assert parse_resident_id(number, today=date(2026, 1, 1)).birth_date == birth
    chars = "0123456789X"
    other = chars[(chars.index(number[-1]) + wrong) % 11]
    with pytest.raises(ValidationError):
        parse_resident_id(number[:-1] + other, today=date(2026, 1, 1))


@pytest.mark.parametrize(
    "code",
    ["91350100M000100Y43", "9144030071526726XG", "91110000802100433B", "91310000MA1FL1MMXL"],
)
def test_known_credit_codes_pass_the_check(code):
    """R-ACC-2: GB 32100 codes of real registrations pass the MOD 31 check."""
    assert parse_credit_code(code).check_digit_ok is True
    assert parse_credit_code(code.lower()).code == code


def test_failing_credit_code_check_is_reported_not_refused():
    """R-ACC-2: a code that fails the check character is flagged for manual review."""
    code = make_credit_code("91110108MA01ABCD1")
    bad = code[:17] + ("0" if code[17] != "0" else "1")
    parsed = parse_credit_code(bad)
    assert parsed.check_digit_ok is False
    assert parsed.code == bad


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("91350100M000100Y4", "uscc_length"),
        ("91350100M000100Y433", "uscc_length"),
        ("91350100M000100I43", "uscc_characters"),  # I is not in the alphabet
        ("91350100M000100O43", "uscc_characters"),
        ("91350100M00010-Y43", "uscc_characters"),
        ("91350100S000100Z43", "uscc_characters"),
    ],
)
def test_malformed_credit_codes_are_refused(code, error):
    """R-ACC-2: wrong length or characters are a hard refusal."""
    with pytest.raises(ValidationError) as exc:
        parse_credit_code(code)
    assert _code(exc) == error


def test_masking_keeps_only_head_and_tail():
    """R-ACC-5: masked form like 1101**********1234: first and last four only."""
    assert mask_number("110105199005171234") == "1101**********1234"
    assert mask_number("123") == "***"
    assert mask_name("李明") == "李*"
    assert mask_name("Li Ming") == "L* M***"


def test_identity_hash_is_keyed_and_normalised(settings):
    """R-ACC-4: the hash depends on the key and ignores case/spacing; never the number."""
    settings.IDENTITY_HASH_KEY = "k1"
    a = identity_hash("individual", "11010519491231002x")
    assert a == identity_hash("individual", " 11010519491231002X ")
    assert "11010519491231002X" not in a
    assert a != identity_hash("enterprise", "11010519491231002X")
    settings.IDENTITY_HASH_KEY = "k2"
    assert identity_hash("individual", "11010519491231002X") != a


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@given(
    body=st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17),
    shift=st.integers(min_value=1, max_value=30),
)
def test_credit_code_check_character_catches_any_other_character(body, shift):
    """R-ACC-2: GB 32100: the right check character passes, every other one is flagged."""
    code = make_credit_code(body)
    assert parse_credit_code(code).check_digit_ok is True
    other = USCC_ALPHABET[(USCC_ALPHABET.index(code[-1]) + shift) % 31]
    assert parse_credit_code(code[:-1] + other).check_digit_ok is False
