"""Hostile input never becomes a 500 (issue 13): control characters, huge or deep bodies,
non-ASCII digits and exponent numbers at the gateway; oversized form values; property tests
over the amount parser."""

import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Posting, UsageEvent
from core.money import parse_amount

pytestmark = pytest.mark.django_db


def usage(key, request_id="r-1", amount="1.5", **extra):
    return {"request_id": request_id, "api_key": key.raw, "model": "m", "amount": amount, **extra}


@pytest.mark.parametrize(
    "field,value,code",
    [
        ("request_id", "r\x00-1", "invalid_request_id"),
        ("request_id", "r-1\n", "invalid_request_id"),
        ("request_id", "r\u2028x", "invalid_request_id"),
        ("model", "gpt\x00", "invalid_model"),
        ("model", "gpt\x1b[31m", "invalid_model"),
        ("model", "\x85", "invalid_model"),
    ],
)
def test_control_characters_are_refused_with_a_code(gw, funded, field, value, code):
    """Issue 13: NUL and other control characters in request ids or models: 400 with a code,
    nothing charged."""
    status, body = gw("usage", {**usage(funded), field: value})
    assert (status, body["code"]) == (400, code)
    assert not UsageEvent.objects.exists()


def test_control_characters_are_refused_per_event_in_a_batch(gw, funded):
    """Issue 13: one bad event in a batch gets its own code; the others are stored."""
    events = [
        usage(funded, "ok-1"),
        usage(funded, "bad\x00"),
        {**usage(funded, "ok-2"), "model": "m\x00"},
        usage(funded, "ok-3"),
    ]
    status, body = gw("usage/batch", {"events": events})
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["accepted", "error", "error", "accepted"]
    assert [r.get("code") for r in body["results"]][1:3] == [
        "invalid_request_id",
        "invalid_model",
    ]
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"ok-1", "ok-3"}


def test_nul_in_api_key_is_an_unknown_key(gw, funded):
    """Issue 13: a NUL in the key is refused as an unknown key, at authorize and usage."""
    status, body = gw("authorize", {"api_key": "sk-\x00"})
    assert (status, body["allowed"], body["code"]) == (200, False, "unknown_api_key")
    status, body = gw("usage", {**usage(funded), "api_key": funded.raw + "\x00"})
    assert (status, body["code"]) == (404, "unknown_api_key")


@pytest.mark.parametrize("amount", ["１００", "٥", "1e2", "１.５", "1_000", " 1.5\n\n"])
def test_non_ascii_digits_and_exponents_are_refused(gw, funded, amount):
    """Issue 13: `１００`, `٥`, and the string "1e2" are refused as invalid_amount."""
    before = Posting.objects.count()
    status, body = gw("usage", usage(funded, amount=amount))
    if amount.strip() == "1.5":
        assert status == 200  # surrounding whitespace is harmless
        return
    assert (status, body["code"]) == (400, "invalid_amount")
    assert Posting.objects.count() == before


@pytest.mark.parametrize("literal", ["1e3", "1E-3", "1.5e0", "2E+0"])
def test_json_exponent_numbers_are_refused(gw, funded, literal):
    """Issue 13: a JSON number in exponent form (`1e3`) is refused like the string "1e2"."""
    raw = json.dumps(usage(funded)).replace('"1.5"', literal)
    status, body = gw("usage", None, raw=raw)
    assert (status, body["code"]) == (400, "invalid_amount")
    raw = json.dumps({"events": [usage(funded, "b-1"), usage(funded, "b-2")]})
    raw = raw.replace('"1.5"', literal, 1)
    status, body = gw("usage/batch", None, raw=raw)
    assert status == 200
    assert [r.get("code") for r in body["results"]] == ["invalid_amount", None]
    assert not UsageEvent.objects.filter(request_id="r-1").exists()


def test_plain_json_numbers_still_charge(gw, funded):
    """R-USE-1: a plain JSON number (not a string) is still read exactly."""
    raw = json.dumps(usage(funded)).replace('"1.5"', "1.234567")
    status, body = gw("usage", None, raw=raw)
    assert (status, body["amount"]) == (200, "1.234567")


def test_oversized_body_gets_a_json_error(gw, funded, settings):
    """Issue 13: a body over DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 JSON, not an HTML page."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    events = [usage(funded, f"r-{i}") for i in range(200)]
    status, body = gw("usage/batch", {"events": events})
    assert (status, body["code"]) == (413, "body_too_large")
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"request_id": "r", "api_key": "k", "model": "m", "amount": ' + "9" * 5000 + "}",
        '{"request_id": "r", "api_key": "k", "model": "m", "amount": "1", "account_id": '
        + "9" * 60
        + "}",
        "\x00",
        '{"events": {"a": 1}}',
        '"just a string"',
    ],
)
def test_malformed_bodies_get_json_errors(gw, funded, raw):
    """Issue 13: deep nesting, 5,000-digit numbers, NUL bodies: an answer with a code, no 500."""
    for path in ("usage", "usage/batch", "authorize"):
        status, body = gw(path, None, raw=raw)
        assert status < 500 and body["code"], (path, status, body)


def test_overlong_fields_are_refused(gw, funded):
    """Issue 13: an api_key or request_id longer than the columns is a 400, not a DB error."""
    status, body = gw("usage", {**usage(funded), "api_key": "k" * 5000})
    assert (status, body["code"]) == (400, "invalid_request")
    status, body = gw("usage", {**usage(funded), "request_id": "r" * 201})
    assert (status, body["code"]) == (400, "invalid_request")


# ---------------------------------------------------------------- the amount parser


@given(st.text(max_size=30))
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_parse_amount_accepts_only_plain_ascii_decimals(text):
    """Issue 13: any text either parses to the same Decimal its ASCII digits spell, with at
    most 6 places and > 0, or is refused with a ValidationError carrying a code."""
    try:
        money = parse_amount(text, places=6)
    except ValidationError as exc:
        assert exc.code in {"invalid_amount", "too_many_decimals", "non_positive_amount"}
        return
    stripped = text.strip()
    assert stripped.isascii()
    assert set(stripped.lstrip("+-")) <= set("0123456789.")
    assert money.amount == Decimal(stripped) > 0
    assert -money.amount.as_tuple().exponent <= 6


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e12"), places=6))
@settings(max_examples=300)
def test_parse_amount_round_trips_plain_decimals(value):
    """Issue 13: every positive amount with at most 6 places, written plainly, parses exactly."""
    assert parse_amount(format(value, "f"), places=6).amount == value


@given(
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=6).filter(
        lambda s: not s.isascii()
    )
)
def test_parse_amount_refuses_every_non_ascii_digit(text):
    """Issue 13: digits of any other script are refused, never read as numbers."""
    with pytest.raises(ValidationError):
        parse_amount(text, places=6)


# ---------------------------------------------------------------- forms


def test_a_255_character_email_is_a_form_error(client):
    """Issue 13: an email longer than the column (254) is a form error, not a database error."""
    from accounts.models import User

    email = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "c" * 7  # 255 characters, valid shape
    assert len(email) == 255
    resp = client.post("/signup/", {"email": email, "password": "Tr0ub4dor&3-horse"})
    assert resp.status_code == 200
    assert "email" in resp.context["form"].errors
    assert not User.objects.exists()


def test_signup_password_may_not_resemble_the_email(client):
    """Issue 13: passwords are checked against the user's own attributes."""
    from accounts.models import User

    resp = client.post(
        "/signup/", {"email": "wanglei.beijing@example.com", "password": "wanglei.beijing"}
    )
    assert resp.status_code == 200
    assert "password" in resp.context["form"].errors
    assert not User.objects.exists()


@pytest.mark.parametrize("value", ["99999999999999999999", "1000000.01"])
def test_an_oversized_threshold_is_a_form_error(client, user, value):
    """Issue 13: a low-balance threshold beyond the column (or any sane figure) is a form
    error and changes nothing, never a database overflow."""
    client.force_login(user)
    resp = client.post("/billing/", {"threshold": value})
    assert resp.status_code in (200, 400)
    assert "threshold" in resp.context["form"].errors
    user.balance_account.refresh_from_db()
    assert user.balance_account.low_balance_threshold is None


def test_a_sane_threshold_is_saved(client, user):
    """R-NOT: a normal threshold is still accepted."""
    client.force_login(user)
    resp = client.post("/billing/", {"threshold": "1000000.00"})
    assert resp.status_code == 302
    user.balance_account.refresh_from_db()
    assert user.balance_account.low_balance_threshold.amount == Decimal("1000000.00")
