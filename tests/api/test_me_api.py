"""The user's own API, /api/v1/me/ (issue 27; R-USE-1, R-USE-6, R-ACC-5, R-ACC-6).

Every test runs twice: through Django's full stack and through the lean path
(billing.lean, as config/wsgi.py serves it); the answers must be the same."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.services import change_standing, create_api_key
from billing.selectors import balance_summary
from billing.services.authorization import authorize, resolve_api_keys
from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage, run_settler
from core.workflow import apply_transition
from ops.models import StaffAlert
from tests.factories import UserFactory, cny
from tests.lean import LeanClient

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the per-key rate and the failure counts live in the cache
    yield
    cache.clear()


@pytest.fixture(params=["full", "lean"])
def client(request):
    return Client() if request.param == "full" else LeanClient()


@pytest.fixture
def key(user):
    key, raw = create_api_key(user, name="ci")
    key.raw = raw
    return key


@pytest.fixture
def me(client, key):
    def get(path, raw=None, **headers):
        token = key.raw if raw is None else raw
        if token:
            headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
        response = client.get(f"{ME}/{path}", **headers)
        assert response["Cache-Control"] == "no-store"
        assert response["Content-Type"].startswith("application/json")
        return response.status_code, response.json(), response

    return get


def _strings(summary):
    return {k: f"{v.amount:.6f}" for k, v in summary.items()}


def test_balance_equals_the_balance_page_and_authorize(me, account, key):
    """R-USE-6, issue 27: the balance figures are balance_summary's (the balance page's
    function), is_available and code are what authorize answers for the key."""
    credit_lot(account, cny("10.00"), channel="alipay", idempotency_key="L1")
    expires = timezone.now() + timedelta(days=3)
    grant_funds(account, cny("2.50"), kind="trial", expires_at=expires, idempotency_key="G1")
    charge_usage(key, cny("1.25"), request_id="r-1", model="m")
    status, body, _ = me("balance")
    assert status == 200
    page = _strings(balance_summary(account))
    assert body["available"] == page["available"]
    assert (body["cash"], body["trial"], body["discount"]) == (
        page["cash"],
        page["trial"],
        page["discount"],
    )
    assert body["refund_hold"] == page["hold"]
    assert body["unsettled_usage"] == page["pending"]
    assert body["arrears"] == page["arrears"]
    assert body["dispute_debt"] == page["dispute_debt"]
    assert body["currency"] == "CNY"
    answer = authorize(resolve_api_keys([key.raw])[key.raw])
    assert (body["is_available"], body["code"]) == (answer.allowed, answer.code) == (True, "ok")
    assert body["available"] == f"{answer.available.amount:.6f}" == "11.250000"
    assert body["next_free_expiry"]["amount"] == "1.250000"  # the trial paid first


def test_unsettled_usage_and_arrears_codes(me, client, account, key):
    """R-USE-6: usage received but not settled counts against is_available; arrears and an
    empty balance have their codes."""
    _, body, _ = me("balance")
    assert (body["is_available"], body["code"], body["available"]) == (
        False,
        "insufficient_balance",
        "0.000000",
    )
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L1")
    charge_usage(key, cny("3"), request_id="over", model="m")
    _, body, _ = me("balance")
    assert (body["is_available"], body["code"], body["arrears"]) == (False, "arrears", "2.000000")


def test_spend_limits_and_their_refusal_equal_authorize(me, account, key):
    """R-USE-7, issue 27: the limits with this period's spend; a reached hard limit
    makes is_available false with authorize's code."""
    from billing.services.spend_limits import set_spend_limit

    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L1")
    set_spend_limit(account=account, period="day", amount="1.00", hard=True)
    _, body, _ = me("balance")
    assert (body["is_available"], body["code"]) == (True, "ok")
    assert [(x["scope"], x["period"], x["limit"], x["reached"]) for x in body["spend_limits"]] == [
        ("account", "day", "1.000000", False)
    ]
    charge_usage(key, cny("1.5"), request_id="big", model="m")
    _, body, _ = me("balance")
    answer = authorize(resolve_api_keys([key.raw])[key.raw])
    assert (body["is_available"], body["code"]) == (answer.allowed, answer.code)
    assert body["code"] == "spend_limit_exceeded"
    assert body["spend_limits"][0]["reached"] is True


def test_locked_key_and_account_still_read_revoked_key_does_not(me, account, key):
    """R-ACC-6, issue 27: a locked key or account reads (with the code that stops its
    calls); a revoked key gets 401 key_revoked."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L1")
    apply_transition(key, "lock", reason="test")
    status, body, _ = me("balance")
    assert (status, body["is_available"], body["code"]) == (200, False, "key_locked")
    status, body, _ = me("key")
    assert (status, body["state"]) == (200, "locked")
    apply_transition(key, "unlock", reason="test")
    change_standing(account, "lock", reason="dispute")
    status, body, _ = me("balance")
    assert (status, body["code"]) == (200, "account_locked")
    change_standing(account, "unlock", reason="test")
    apply_transition(key, "revoke", reason="test")
    status, body, _ = me("balance")
    assert (status, body["code"]) == (401, "key_revoked")


@pytest.mark.parametrize("raw", ["", "sk-unknown", "x" * 500])
def test_missing_or_unknown_key_is_401(me, raw):
    """R-ACC-6: no key, an unknown key, an absurd one: 401 invalid_api_key."""
    status, body, _ = me("balance", raw=raw)
    assert (status, body["code"]) == (401, "invalid_api_key")


def test_unknown_key_failures_are_throttled_and_alerted(me, settings):
    """Issue 27: invalid keys per address are throttled (429 + Retry-After) and alerted
    like the gateway's wrong service tokens."""
    settings.GATEWAY_AUTH_FAILURE_LIMIT = 3
    for _ in range(3):
        status, body, _ = me("balance", raw="sk-guess")
        assert status == 401
    status, body, response = me("balance", raw="sk-guess")
    assert (status, body["code"]) == (429, "too_many_auth_failures")
    assert int(response["Retry-After"]) > 0
    assert StaffAlert.objects.filter(kind="me_api_auth_failures").count() == 1


def test_per_key_rate_limit(me, settings):
    """Issue 27: past ME_API_RATE_PER_MINUTE calls a minute, 429 rate_limited with
    Retry-After; another key is not affected."""
    settings.ME_API_RATE_PER_MINUTE = 2
    assert me("key")[0] == 200
    assert me("key")[0] == 200
    status, body, response = me("key")
    assert (status, body["code"]) == (429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 61


def test_errors_in_the_callers_language(me):
    """R-ADM-6: the message follows Accept-Language; the code does not."""
    _, en, _ = me("balance", raw="sk-nope", HTTP_ACCEPT_LANGUAGE="en")
    _, zh, _ = me("balance", raw="sk-nope", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert en["code"] == zh["code"] == "invalid_api_key"
    assert en["message"] == "A valid API key is required."
    assert zh["message"] != en["message"] and any("\u4e00" <= c <= "\u9fff" for c in zh["message"])


def test_usage_event_of_another_account_is_404(me, account, key):
    """R-USE-1, issue 27: one event by request id, this account's only; another
    account's request id answers exactly as an unknown one."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L1")
    charge_usage(key, cny("0.5"), request_id="mine/1", model="m")
    other = UserFactory(phone="").balance_account
    credit_lot(other, cny("5"), channel="alipay", idempotency_key="L2")
    okey, _raw = create_api_key(other.user, name="o")
    charge_usage(okey, cny("0.5"), request_id="theirs", model="m")
    status, body, _ = me("usage/mine/1")
    assert (status, body["state"], body["amount"], body["split"]["cash"]) == (
        200,
        "settled",
        "0.500000",
        "0.500000",
    )
    status, theirs, _ = me("usage/theirs")
    status2, unknown, _ = me("usage/never")
    assert (status, theirs["code"]) == (status2, unknown["code"]) == (404, "unknown_request_id")
    assert theirs == unknown
    for hostile in ("a%00b", "%E2%80%AE", "x" * 300):
        status, body, _ = me(f"usage/{hostile}")
        assert (status, body["code"]) == (404, "unknown_request_id")


def test_usage_totals_by_day_model_and_key(me, client, account, key):
    """R-USE-1, issue 27: usage totals from the daily rollup for a date range."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L1")
    for i, model in enumerate(["a", "a", "b"]):
        charge_usage(key, cny("0.1"), request_id=f"u-{i}", model=model)
    run_settler(seconds=0)
    today = timezone.localdate().isoformat()
    status, body, _ = me(f"usage?start={today}&end={today}&by=model")
    assert status == 200, body
    assert [(r["model"], r["calls"], r["amount"]) for r in body["rows"]] == [
        ("a", 2, "0.200000"),
        ("b", 1, "0.100000"),
    ]
    assert (body["total_calls"], body["total_amount"]) == (3, "0.300000")
    _, by_day, _ = me("usage")
    assert [(r["day"], r["calls"]) for r in by_day["rows"]] == [(today, 3)]
    _, by_key, _ = me("usage?by=key")
    assert [(r["api_key_prefix"], r["calls"]) for r in by_key["rows"]] == [(key.prefix, 3)]


@pytest.mark.parametrize(
    "query,code",
    [
        ("start=2026-01-01&end=2026-06-30", "range_too_long"),
        ("start=2026-02-01&end=2026-01-01", "invalid_range"),
        ("start=yesterday", "invalid_request"),
        ("by=week", "invalid_request"),
        ("api_key_id=-1", "invalid_request"),
    ],
)
def test_usage_bad_queries(me, query, code):
    """Issue 27: at most 92 days; bad input a 400 with a stable code, never a 500."""
    status, body, _ = me(f"usage?{query}")
    assert (status, body["code"]) == (400, code)


@pytest.mark.parametrize(
    "query", ["end=0001-01-01", "end=0001-01-20", "start=9999-12-31&end=9999-12-31"]
)
def test_usage_at_the_ends_of_the_calendar(me, query):
    """Issue 27 (found by the fuzz): dates at the calendar's ends answer, never a 500."""
    status, body, _ = me(f"usage?{query}")
    assert (status, body["rows"]) == (200, [])


def test_the_key_itself(me, client, key):
    """R-ACC-6: name, prefix, state, created, last used (after the gateway used it)."""
    authorize(resolve_api_keys([key.raw])[key.raw])
    status, body, _ = me("key")
    assert status == 200
    assert (body["id"], body["name"], body["prefix"], body["state"]) == (
        key.pk,
        "ci",
        key.prefix,
        "active",
    )
    assert body["created_at"] and body["last_used_at"]
    assert set(body) == {"id", "name", "prefix", "state", "created_at", "last_used_at"}


def test_no_personal_data_in_any_answer(me, user, account, key):
    """R-ACC-5: no names, email, phone or ID numbers in the answers."""
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L1")
    texts = [me(path)[2].content.decode() for path in ("balance", "key", "usage")]
    for text in texts:
        assert user.email not in text
        assert key.raw not in text
        for field in ("name", "display_name", "phone", "real_name"):
            value = getattr(user, field, "")
            if value:
                assert str(value) not in text


def test_unknown_paths_answer_json_404(me, client, key):
    """Issue 27: anything else under the prefix is JSON, never Django's HTML page; a
    POST is a JSON 405."""
    status, body, _ = me("nothing/here")
    assert (status, body["code"]) == (404, "not_found")
    response = client.post(f"{ME}/balance", HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
    assert response["Allow"] == "GET" and response["Cache-Control"] == "no-store"


def test_schema_documents_every_endpoint_with_examples(client):
    """Issue 27: the OpenAPI schema has a real example for every endpoint and error."""
    schema = Client().get(f"{ME}/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {f"{ME}/balance", f"{ME}/usage", f"{ME}/usage/{{request_id}}", f"{ME}/key"}
    for item in paths.values():
        for status, response in item["get"]["responses"].items():
            media = response["content"]["application/json"]
            assert "example" in media or "examples" in media, status
    assert (
        "curl" in schema["info"]["description"] and "requests.get" in schema["info"]["description"]
    )
    assert Client().get(f"{ME}/docs").status_code == 200
