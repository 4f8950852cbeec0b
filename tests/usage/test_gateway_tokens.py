"""Token counts on usage events and gateway messages in the caller's language
(R-USE-1, R-ADM-6): optional non-negative integer counts, `invalid_tokens` otherwise,
never a 500; every error message follows Accept-Language, codes unchanged."""

import json

import pytest

from accounts.services import create_api_key, lock_api_key
from billing.models import UsageEvent
from tests.ledger.http import TOKEN


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture
def raw_key(user):
    _key, raw = create_api_key(user, name="k")
    return raw


def post(client, path, body, language=None, raw=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    if language:
        headers["HTTP_ACCEPT_LANGUAGE"] = language
    resp = client.post(
        f"/api/v1/gateway/{path}",
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        **headers,
    )
    return resp.status_code, json.loads(resp.content)


def event(raw, rid, **extra):
    return {"request_id": rid, "api_key": raw, "model": "glm-4", "amount": "0.01", **extra}


@pytest.mark.django_db
def test_token_counts_are_stored(client, raw_key):
    """R-USE-1: input_tokens and output_tokens are stored when sent, empty otherwise."""
    status, _ = post(client, "usage", event(raw_key, "t1", input_tokens=12, output_tokens=0))
    assert status == 200
    status, body = post(client, "usage/batch", {"events": [event(raw_key, "t2")]})
    assert status == 200 and body["accepted"] == 1
    got = dict(UsageEvent.objects.values_list("request_id", "input_tokens"))
    assert got == {"t1": 12, "t2": None}
    assert UsageEvent.objects.get(request_id="t1").output_tokens == 0


@pytest.mark.django_db
@pytest.mark.parametrize("value", [-1, "12", 1.5, True, 2**63, [], {"n": 1}, "1" + "0" * 50])
def test_bad_token_counts_are_refused_with_a_stable_code(client, raw_key, value):
    """R-USE-1: a count that is not a non-negative integer is `invalid_tokens`; nothing stored."""
    status, body = post(client, "usage", event(raw_key, "bad", input_tokens=value))
    assert (status, body["code"]) == (400, "invalid_tokens")
    status, body = post(
        client, "usage/batch", {"events": [event(raw_key, "b", output_tokens=value)]}
    )
    assert status == 200 and body["results"][0]["code"] == "invalid_tokens"
    assert not UsageEvent.objects.exists()


@pytest.mark.django_db
def test_huge_integer_literal_is_refused(client, raw_key):
    """R-USE-1: a 60-digit JSON integer is refused as invalid_tokens, not parsed at length."""
    raw = json.dumps(event(raw_key, "huge")).replace("}", ', "input_tokens": ' + "9" * 60 + "}")
    status, body = post(client, "usage", None, raw=raw)
    assert (status, body["code"]) == (400, "invalid_tokens")


@pytest.mark.django_db
def test_messages_follow_accept_language_codes_do_not(client, user, raw_key):
    """R-ADM-6: key_locked, request_id_conflict, unknown_api_key and invalid_tokens speak
    Chinese under zh-hans and English otherwise; the codes are the same."""
    post(client, "usage", event(raw_key, "c1"))
    cases = [
        (event(raw_key, "c1", amount="0.02"), "request_id_conflict"),
        (event("sk-nope", "c2"), "unknown_api_key"),
        (event(raw_key, "c3", input_tokens=-1), "invalid_tokens"),
    ]
    for body, code in cases:
        _, en = post(client, "usage", body, "en")
        _, zh = post(client, "usage", body, "zh-hans")
        assert en["code"] == zh["code"] == code
        assert en["message"] != zh["message"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh["message"]), zh
    key = user.balance_account.api_keys.get()
    lock_api_key(key, reason="test")
    _, zh = post(client, "usage", event(raw_key, "c4"), "zh-hans")
    assert zh["code"] == "key_locked"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh["message"]), zh
    _, batch = post(client, "usage/batch", {"events": [event(raw_key, "c5")]}, "zh-hans")
    assert batch["results"][0]["code"] == "key_locked"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in batch["results"][0]["message"])


def test_every_fixed_gateway_message_has_its_chinese():
    """R-ADM-6: every fixed message a gateway code carries is translated (codes unchanged)."""
    from django.utils import translation
    from django.utils.translation import gettext

    from billing import api
    from billing.services.authorization import REFUSAL_MESSAGES
    from billing.services.metering import CONFLICT

    texts = [*REFUSAL_MESSAGES.values(), CONFLICT[1], api._NO_KEY, api._NO_TOKEN, api._BUSY]
    with translation.override("zh-hans"):
        untranslated = [t for t in texts if gettext(t) == t]
    assert not untranslated
