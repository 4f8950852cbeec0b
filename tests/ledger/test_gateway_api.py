"""The gateway API (R-USE-1 … R-USE-3, R-LED-3, R-LED-5).

Most tests need only HTTP semantics (status, JSON body, headers) and run through
Django's test client inside the test's transaction. A handful marked `live` go over
real HTTP to pytest-django's live server (a socket, the WSGI server, committed data):
the service-token header, a raw JSON body with a number, malformed JSON, a 1,000-event
batch and the OpenAPI document."""

import json

import pytest

from accounts.services import change_standing, create_api_key
from billing.models import Posting, UsageEvent
from billing.services.ledger import credit_lot
from billing.services.settlement import charge_usage, run_settler
from core.workflow import apply_transition
from tests.factories import UserFactory

from .conftest import cny, summary
from .http import TOKEN, call, post

pytestmark = pytest.mark.django_db
live = pytest.mark.django_db(transaction=True)  # the live server sees committed rows only


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture(params=["full", "lean"])
def client(request):
    """Every test-client test twice: the full middleware stack and the lean path that
    config/wsgi.py serves the gateway on (billing.lean, issue 25): same answers."""
    from django.test import Client

    from tests.lean import LeanClient

    return Client() if request.param == "full" else LeanClient()


@pytest.fixture
def gw(client):
    """POST to the gateway through Django's test client: gw(path, body) -> (status, body)."""
    return lambda path, body, **kw: post(client, path, body, **kw)


@pytest.fixture
def funded(account, api_key):
    credit_lot(account, cny("10.00"), channel="alipay", idempotency_key="fund")
    return api_key


def usage(key, request_id="r-1", amount="1.5", **extra):
    return {
        "request_id": request_id,
        "api_key": key.raw,
        "model": "gpt-x",
        "amount": amount,
        **extra,
    }


def nothing_moved(before_postings):
    return Posting.objects.count() == before_postings


def settle():
    """What the continuous settler does a moment later (R-USE-5)."""
    return run_settler(seconds=0)


def get_state(client, request_id, token=TOKEN):
    response = client.get(
        f"/api/v1/gateway/usage/{request_id}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    return response.status_code, response.json()


@live
def test_authorize_allows_a_funded_key(live_server, funded):
    """R-USE-1: authorize answers allowed with the available balance."""
    status, body = call(live_server.url, "authorize", {"api_key": funded.raw})
    assert status == 200
    assert body == {"allowed": True, "code": "ok", "available": "10.000000", "currency": "CNY"}


def test_authorize_refusal_codes(gw, account, api_key):
    """R-USE-1: refusals carry stable codes: insufficient_balance, arrears, key and standing."""
    status, body = gw("authorize", {"api_key": api_key.raw})
    assert (status, body["allowed"], body["code"]) == (200, False, "insufficient_balance")

    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L1")
    charge_usage(api_key, cny("3"), request_id="over", model="m")
    _, body = gw("authorize", {"api_key": api_key.raw})
    assert (body["allowed"], body["code"], body["available"]) == (False, "arrears", "0.000000")
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L2")
    _, body = gw("authorize", {"api_key": api_key.raw})
    assert (body["allowed"], body["code"], body["available"]) == (True, "ok", "3.000000")

    for transition, back, code in [
        ("suspend", "reinstate", "account_suspended"),
        ("lock", "unlock", "account_locked"),
        ("freeze", "unfreeze", "account_frozen"),
    ]:
        kwargs = {"authority": "Court", "document_number": "42"} if transition == "freeze" else {}
        change_standing(account, transition, reason="test", **kwargs)
        _, body = gw("authorize", {"api_key": api_key.raw})
        assert (body["allowed"], body["code"]) == (False, code)
        change_standing(account, back, reason="test")

    apply_transition(api_key, "lock", reason="test")
    _, body = gw("authorize", {"api_key": api_key.raw})
    assert (body["allowed"], body["code"]) == (False, "key_locked")
    apply_transition(api_key, "revoke", reason="test")
    _, body = gw("authorize", {"api_key": api_key.raw})
    assert (body["allowed"], body["code"]) == (False, "key_revoked")

    key2, raw2 = create_api_key(account.user, name="k2")  # a terminated account makes none
    change_standing(account, "terminate", reason="test")
    _, body = gw("authorize", {"api_key": raw2})
    assert (body["allowed"], body["code"]) == (False, "account_terminated")


def test_authorize_unknown_and_foreign_key(gw, funded):
    """R-USE-1: an unknown key, or a key of another account, is refused."""
    _, body = gw("authorize", {"api_key": "sk-nope"})
    assert (body["allowed"], body["code"]) == (False, "unknown_api_key")
    other = UserFactory().balance_account
    _, body = gw("authorize", {"api_key": funded.raw, "account_id": other.pk})
    assert (body["allowed"], body["code"]) == (False, "foreign_api_key")


def test_usage_is_metered_then_settled_with_its_split(gw, client, account, funded):
    """R-USE-1/R-USE-5/R-USE-2: usage answers `accepted` once the event is stored, with no
    posting and no balance moved; the settler then charges it, and the event's state shows
    settled with the per-bucket split and the lot that paid."""
    postings = Posting.objects.count()
    status, body = gw("usage", usage(funded, amount="1.234567"))
    assert status == 200
    assert body == {
        "request_id": "r-1",
        "status": "accepted",
        "amount": "1.234567",
        "currency": "CNY",
    }
    assert nothing_moved(postings) and summary(account)["cash"] == 10
    status, state = get_state(client, "r-1")
    assert status == 200 and state["state"] == "pending" and state["split"] is None
    _, auth = gw("authorize", {"api_key": funded.raw})
    assert auth["available"] == "8.765433"  # available minus unsettled (R-USE-6)

    assert settle() == 1
    assert summary(account)["cash"] == cny("8.765433").amount
    status, state = get_state(client, "r-1")
    assert status == 200 and state["state"] == "settled"
    assert state["split"] == {
        "trial": "0.000000",
        "discount": "0.000000",
        "cash": "1.234567",
        "arrears": "0.000000",
        "package": "0.000000",  # resource packages (issue 23)
    }
    assert state["sources"][0]["bucket"] == "cash" and state["sources"][0]["lot"]
    assert state["transaction_id"] == UsageEvent.objects.get().transaction_id
    _, auth = gw("authorize", {"api_key": funded.raw})
    assert auth["available"] == "8.765433"  # the same figure once settled


def test_usage_state_of_an_unknown_request_id(gw, client, funded):
    """R-USE-1: the state of a request id never stored is 404 unknown_request_id; the
    endpoint needs the service token like the others."""
    status, body = get_state(client, "never-sent")
    assert (status, body["code"]) == (404, "unknown_request_id")
    gw("usage", usage(funded, "r-9"))
    status, body = get_state(client, "r-9", token="wrong")
    assert (status, body["code"]) == (401, "unauthorized")


@live
def test_usage_accepts_json_number_without_float_rounding(live_server, account, funded):
    """R-LED-3: a JSON number amount is read as an exact decimal, never a float."""
    raw = json.dumps(usage(funded)).replace('"1.5"', "0.100001").encode()
    status, body = call(live_server.url, "usage", None, raw=raw)
    assert status == 200 and body["amount"] == "0.100001"


def test_usage_replay_returns_first_result_and_moves_nothing(gw, account, funded):
    """R-LED-5/R-USE-1: replaying a request id answers `replayed` with the first event's
    amount and stores nothing; the same request id with another amount or another key is
    409 request_id_conflict, before and after settlement."""
    _, first = gw("usage", usage(funded, "same"))
    status, again = gw("usage", usage(funded, "same"))
    assert status == 200 and again["status"] == "replayed"
    assert again["amount"] == first["amount"] == "1.500000"
    status, body = gw("usage", usage(funded, "same", amount="9"))
    assert (status, body["code"]) == (409, "request_id_conflict")
    other_key, other_raw = create_api_key(account.user, name="second")
    status, body = gw("usage", {**usage(funded, "same"), "api_key": other_raw})
    assert (status, body["code"]) == (409, "request_id_conflict")
    assert UsageEvent.objects.count() == 1
    settle()
    count = Posting.objects.count()
    status, again = gw("usage", usage(funded, "same"))
    assert (status, again["status"]) == (200, "replayed")
    status, body = gw("usage", usage(funded, "same", amount="1.4"))
    assert (status, body["code"]) == (409, "request_id_conflict")
    settle()
    assert nothing_moved(count) and summary(account)["cash"] == cny("8.5").amount


@pytest.mark.parametrize(
    "change,status,code",
    [
        ({"currency": "USD"}, 400, "wrong_currency"),
        ({"amount": "0.0000001"}, 400, "too_many_decimals"),
        ({"amount": "-1"}, 400, "non_positive_amount"),
        ({"amount": "0"}, 400, "non_positive_amount"),
        ({"amount": "abc"}, 400, "invalid_amount"),
        ({"api_key": "sk-unknown"}, 404, "unknown_api_key"),
    ],
)
def test_usage_bad_input_moves_nothing(gw, funded, change, status, code):
    """R-USE-1/R-LED-3: bad input is answered with a stable code and moves nothing."""
    count = Posting.objects.count()
    got_status, body = gw("usage", {**usage(funded), **change})
    assert (got_status, body["code"]) == (status, code)
    assert nothing_moved(count) and not UsageEvent.objects.exists()


def test_usage_with_another_accounts_key_is_refused(gw, funded):
    """R-USE-1: a key that belongs to another account than the one named is refused."""
    other = UserFactory().balance_account
    count = Posting.objects.count()
    status, body = gw("usage", usage(funded, account_id=other.pk))
    assert (status, body["code"]) == (403, "foreign_api_key")
    assert nothing_moved(count)


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_missing_or_wrong_service_token(gw, funded, token):
    """R-USE-1: without the right service token nothing is answered or moved."""
    count = Posting.objects.count()
    for path, body in [("usage", usage(funded)), ("authorize", {"api_key": funded.raw})]:
        status, out = gw(path, body, token=token)
        assert (status, out["code"]) == (401, "unauthorized")
    assert nothing_moved(count)


@live
def test_malformed_json_and_wrong_shape(live_server, funded):
    """R-USE-1: malformed JSON and a wrong body shape get invalid_json / invalid_request."""
    status, out = call(live_server.url, "usage", None, raw=b'{"request_id": ')
    assert (status, out["code"]) == (400, "invalid_json")
    status, out = call(live_server.url, "usage", [1, 2])
    assert (status, out["code"]) == (400, "invalid_request")
    status, out = call(live_server.url, "usage/batch", {"events": "x"})
    assert (status, out["code"]) == (400, "invalid_request")
    assert not UsageEvent.objects.exists()


@live
def test_batch_one_result_per_event(live_server, account, funded):
    """R-USE-1: a batch of 1,000 events gets one result per event; bad events get their own
    error code, duplicates inside the batch replay, good events are stored (R-USE-5: and
    charged by the settler)."""
    events = [usage(funded, f"b-{i}", amount="0.001") for i in range(1000)]
    events[10]["amount"] = "0.0000001"
    events[11]["api_key"] = "sk-unknown"
    events[12]["request_id"] = "b-0"  # same request id as event 0: a replay
    status, body = call(live_server.url, "usage/batch", {"events": events})
    assert status == 200
    assert len(body["results"]) == 1000
    assert [r["index"] for r in body["results"]] == list(range(1000))
    assert (body["accepted"], body["replayed"], body["errors"]) == (997, 1, 2)
    assert body["results"][10]["code"] == "too_many_decimals"
    assert body["results"][11]["code"] == "unknown_api_key"
    assert body["results"][12]["status"] == "replayed"
    assert UsageEvent.objects.count() == 997
    assert summary(account)["cash"] == 10  # metered, not settled yet
    assert settle() == 997
    assert summary(account)["cash"] == cny("9.003").amount
    # the whole batch again: every event replays, nothing moves
    count = Posting.objects.count()
    _, again = call(live_server.url, "usage/batch", {"events": events})
    assert (again["accepted"], again["replayed"], again["errors"]) == (0, 998, 2)
    assert settle() == 0 and nothing_moved(count)


def test_batch_over_the_limit(gw, funded, settings):
    """R-USE-1: a batch over the limit is refused as a whole with batch_too_large."""
    from billing import api

    events = [usage(funded, f"x-{i}", amount="0.01") for i in range(api.batch_limit() + 1)]
    status, out = gw("usage/batch", {"events": events})
    assert (status, out["code"]) == (413, "batch_too_large")
    assert not UsageEvent.objects.exists()


def test_batch_limit_is_the_gateway_batch_limit_setting(gw, account, funded, settings):
    """R-USE-1: the batch size limit is settings.GATEWAY_BATCH_LIMIT (default 5,000): one
    event over it is refused as a whole (413 batch_too_large) and nothing is stored; a
    batch of exactly the limit is stored."""
    from billing import api
    from billing.models import LedgerTransaction

    assert api.batch_limit() == getattr(settings, "GATEWAY_BATCH_LIMIT", 5000)
    settings.GATEWAY_BATCH_LIMIT = 3
    before = (Posting.objects.count(), LedgerTransaction.objects.count())
    events = [usage(funded, f"lim-{i}", amount="0.25") for i in range(4)]
    status, out = gw("usage/batch", {"events": events})
    assert (status, out["code"]) == (413, "batch_too_large")
    assert "3" in out["message"]
    assert (Posting.objects.count(), LedgerTransaction.objects.count()) == before
    assert not UsageEvent.objects.exists() and summary(account)["cash"] == 10

    status, out = gw("usage/batch", {"events": events[:3]})
    assert status == 200 and (out["accepted"], out["errors"]) == (3, 0)
    settle()
    assert UsageEvent.objects.count() == 3 and summary(account)["cash"] == cny("9.25").amount


@live
def test_openapi_served(live_server):
    """R-USE-1: the API is described by OpenAPI served by the project."""
    import urllib.request

    with urllib.request.urlopen(f"{live_server.url}/api/v1/gateway/openapi.json") as resp:
        doc = json.loads(resp.read())
    assert {
        "/api/v1/gateway/authorize",
        "/api/v1/gateway/usage",
        "/api/v1/gateway/usage/batch",
        "/api/v1/gateway/usage/{request_id}",
    } <= set(doc["paths"])


def test_batch_request_id_of_another_account_is_a_per_event_error(gw, account, funded):
    """R-LED-5: a request id already used by another account is refused for that event
    only; the rest of the batch is stored and charged."""
    other = UserFactory()
    key2, raw2 = create_api_key(other, name="k2")
    credit_lot(other.balance_account, cny("5"), channel="alipay", idempotency_key="o")
    charge_usage(key2, cny("1"), request_id="taken", model="m")
    events = [usage(funded, "taken", amount="0.5"), usage(funded, "fresh", amount="0.5")]
    status, body = gw("usage/batch", {"events": events})
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["error", "accepted"]
    assert body["results"][0]["code"] == "request_id_conflict"
    settle()
    assert summary(account)["cash"] == cny("9.5").amount
    assert summary(other.balance_account)["cash"] == 4


def test_locked_key_and_frozen_account_are_refused_when_charging(gw, account, funded):
    """R-ACC-6 / R-ACC-8: usage for a locked key or a frozen account is refused at
    ingestion (403 with a stable code) and stores nothing; a replay of an earlier event
    still answers."""
    status, first = gw("usage", usage(funded, "before-lock"))
    assert status == 200 and first["status"] == "accepted"
    settle()
    before = Posting.objects.count()

    apply_transition(funded, "lock", reason="risk")
    status, body = gw("usage", usage(funded, "after-lock"))
    assert (status, body["code"]) == (403, "key_locked")
    status, body = gw("usage", usage(funded, "before-lock"))
    assert (status, body["status"]) == (200, "replayed")
    apply_transition(funded, "unlock", reason="risk")

    change_standing(account, "freeze", reason="order", authority="Court", document_number="9")
    status, body = gw("usage", usage(funded, "while-frozen"))
    assert (status, body["code"]) == (403, "account_frozen")
    status, body = gw("usage/batch", {"events": [usage(funded, "batch-frozen")]})
    assert status == 200
    assert (body["results"][0]["status"], body["results"][0]["code"]) == (
        "error",
        "account_frozen",
    )
    settle()
    assert nothing_moved(before)
    assert not UsageEvent.objects.filter(
        request_id__in=["after-lock", "while-frozen", "batch-frozen"]
    ).exists()
    assert summary(account)["cash"] == cny("8.50").amount


def test_absurd_amount_is_refused_not_a_server_error(gw, funded):
    """R-USE-1: an amount beyond any single call gets 400 amount_too_large, no movement."""
    before = Posting.objects.count()
    status, body = gw("usage", usage(funded, "huge", amount="9999999999999"))
    assert (status, body["code"]) == (400, "amount_too_large")
    status, body = gw("usage/batch", {"events": [usage(funded, "huge-b", amount="1e15")]})
    assert status == 200 and body["results"][0]["code"] in ("amount_too_large", "invalid_amount")
    assert nothing_moved(before)


def test_authorize_records_when_a_key_was_last_used(gw, funded):
    """R-ACC-6: the keys page shows when each key was last presented to the gateway;
    repeated calls within a minute write it once."""
    from accounts.models import ApiKey

    assert ApiKey.objects.get(pk=funded.pk).last_used_at is None
    gw("authorize", {"api_key": funded.raw})
    first = ApiKey.objects.get(pk=funded.pk).last_used_at
    assert first is not None
    gw("authorize", {"api_key": funded.raw})
    assert ApiKey.objects.get(pk=funded.pk).last_used_at == first


@pytest.mark.parametrize(
    "path", ["usage/", "no-such-endpoint", "usage/batch/extra/", "usage/%0A", "usage/a%0Ab"]
)
def test_unknown_gateway_paths_answer_json_404(client, path):
    """R-USE-1: errors are JSON with a stable code, also for a path that is no endpoint
    (an empty request id included), never Django's HTML page."""
    response = client.get(f"/api/v1/gateway/{path}", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] in {"not_found", "unknown_request_id"}
