"""The gateway without Redis (R-USE-6, R-USE-1; issue 14: "A test stops Redis (or points
at a dead one)").

Redis is a cache, PostgreSQL the truth. With the cache pointed at a Redis nobody listens
on, ingestion, authorization and the state of an event still answer, with the right
figures (available = balance − unsettled usage), and a refusal (a locked or revoked key,
a frozen account) is answered from the moment it commits: standing and key state are
never read from a cache."""

import logging
import time

import pytest
from django.core.cache import cache

from accounts.services import change_standing, lock_api_key, revoke_api_key, unlock_api_key
from billing.models import UsageEvent
from billing.services.ledger import credit_lot
from billing.services.settlement import run_settler
from core import cache as forgiving

from .conftest import cny, summary
from .http import TOKEN, post
from .settlement_checks import assert_books_exact

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:6399/0"  # nothing listens there


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture
def dead_redis(settings):
    settings.CACHES = {
        "default": {"BACKEND": "core.cache.ForgivingRedisCache", "LOCATION": DEAD_REDIS}
    }
    with pytest.raises(Exception):  # noqa: B017,PT011 - any redis error: it really is dead
        import redis

        redis.Redis.from_url(DEAD_REDIS, socket_connect_timeout=0.5).ping()
    return settings


@pytest.fixture
def gw(client):
    return lambda path, body, **kw: post(client, path, body, **kw)


def usage(key, request_id, amount):
    return {"request_id": request_id, "api_key": key.raw, "model": "m", "amount": amount}


def test_usage_and_authorize_answer_right_without_redis(dead_redis, gw, client, account, api_key):
    """R-USE-6 / R-USE-1: with Redis dead, POST usage and usage/batch store the events
    (accepted, then replayed), authorize answers available = balance − unsettled usage
    exactly, GET usage/{id} answers the state, and once settled the figures are exact.
    A wrong service token is still a 401 (not a 500), and every answer is quick."""
    credit_lot(account, cny("10.00"), channel="alipay", idempotency_key="L")
    started = time.monotonic()

    status, body = gw("authorize", {"api_key": api_key.raw})
    assert (status, body["allowed"], body["available"]) == (200, True, "10.000000")

    status, body = gw("usage", usage(api_key, "r1", "1.250000"))
    assert (status, body["status"], body["amount"]) == (200, "accepted", "1.250000")
    status, body = gw("usage", usage(api_key, "r1", "1.250000"))
    assert (status, body["status"]) == (200, "replayed")
    status, body = gw("usage", usage(api_key, "r1", "2"))
    assert (status, body["code"]) == (409, "request_id_conflict")
    status, body = gw(
        "usage/batch", {"events": [usage(api_key, f"b{i}", "0.500000") for i in range(4)]}
    )
    assert (status, body["accepted"], body["errors"]) == (200, 4, 0)

    # nothing settled yet: the balance is untouched, authorize counts the unsettled 3.25
    assert summary(account)["cash"] == 10
    status, body = gw("authorize", {"api_key": api_key.raw})
    assert (status, body["allowed"], body["available"]) == (200, True, "6.750000")
    state = client.get("/api/v1/gateway/usage/r1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert (state.status_code, state.json()["state"]) == (200, "pending")

    status, body = gw("authorize", {"api_key": api_key.raw}, token="wrong")
    assert (status, body["code"]) == (401, "unauthorized")

    assert run_settler(seconds=0) == 5
    assert summary(account)["cash"] == cny("6.75").amount
    status, body = gw("authorize", {"api_key": api_key.raw})
    assert body["available"] == "6.750000"
    state = client.get("/api/v1/gateway/usage/r1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert (state["state"], state["split"]["cash"]) == ("settled", "1.250000")
    assert UsageEvent.objects.count() == 5
    assert assert_books_exact() == 1  # one chunk: one usage transaction for the five
    # a dead cache costs a refused connection now and then, not a timeout per call
    assert time.monotonic() - started < 10


def test_overdrawn_by_unsettled_usage_is_refused_without_redis(dead_redis, gw, account, api_key):
    """R-USE-6: usage that is metered but not settled already counts: once it exceeds
    the balance, authorize refuses (insufficient_balance, available 0) before any
    settlement; after settlement the excess is arrears and authorize says so."""
    credit_lot(account, cny("1.00"), channel="alipay", idempotency_key="L")
    for i in range(3):
        assert gw("usage", usage(api_key, f"r{i}", "0.400000"))[0] == 200
    status, body = gw("authorize", {"api_key": api_key.raw})
    assert (body["allowed"], body["code"], body["available"]) == (
        False,
        "insufficient_balance",
        "0.000000",
    )
    run_settler(seconds=0)
    assert summary(account)["arrears"] == cny("0.20").amount
    status, body = gw("authorize", {"api_key": api_key.raw})
    assert (body["allowed"], body["code"]) == (False, "arrears")


def test_refusals_are_never_stale_without_redis(dead_redis, gw, user, account, api_key):
    """R-USE-6 / R-ACC-6 / R-ACC-8: right after a key is locked, the next authorize and
    usage call answer key_locked; after unlock, allowed again; after a freeze commits,
    account_frozen; a revoked key answers key_revoked. Nothing refused is stored."""
    credit_lot(account, cny("5.00"), channel="alipay", idempotency_key="L")
    assert gw("authorize", {"api_key": api_key.raw})[1]["allowed"] is True

    lock_api_key(api_key, reason="risk")
    assert gw("authorize", {"api_key": api_key.raw})[1]["code"] == "key_locked"
    assert gw("usage", usage(api_key, "locked", "0.1")) == (
        403,
        {"code": "key_locked", "message": "This API key is locked by the platform."},
    )
    unlock_api_key(api_key, reason="cleared")
    assert gw("authorize", {"api_key": api_key.raw})[1]["code"] == "ok"

    change_standing(account, "freeze", reason="order", authority="Court", document_number="1")
    assert gw("authorize", {"api_key": api_key.raw})[1]["code"] == "account_frozen"
    assert gw("usage", usage(api_key, "frozen", "0.1"))[1]["code"] == "account_frozen"
    change_standing(account, "unfreeze", reason="order lifted")
    assert gw("authorize", {"api_key": api_key.raw})[1]["code"] == "ok"

    revoke_api_key(user, api_key.pk)
    assert gw("authorize", {"api_key": api_key.raw})[1]["code"] == "key_revoked"
    assert gw("usage", usage(api_key, "revoked", "0.1"))[1]["code"] == "key_revoked"
    assert not UsageEvent.objects.exists()


def test_the_forgiving_cache_answers_like_an_empty_one(dead_redis, caplog, monkeypatch):
    """R-USE-6: against a dead Redis the cache's reads give their default, writes are
    dropped, incr is "missing key" (ValueError, what the API's failure counter expects),
    one warning is logged, and Redis is left alone for a few seconds after a failure."""
    with caplog.at_level(logging.WARNING, logger="core.cache"):
        assert cache.get("k", 7) == 7
        assert cache.add("k", 1) is False
        cache.set("k", 1)
        assert cache.get_many(["k"]) == {}
        with pytest.raises(ValueError):
            cache.incr("k")
        assert cache.delete("k") is False
    assert len([r for r in caplog.records if r.name == "core.cache"]) == 1

    calls = []
    monkeypatch.setattr(
        forgiving.RedisCache, "get", lambda self, *a, **k: calls.append(a) or "live"
    )
    assert cache.get("k", 7) == 7 and calls == []  # still inside the pause
    cache._down_until = 0.0  # the pause is over
    assert cache.get("k", 7) == "live"  # Redis is asked again


@pytest.mark.redis
def test_the_forgiving_cache_is_a_plain_redis_cache_when_redis_is_up(settings):
    """R-USE-6: with Redis up the cache works as before (the API's failure counter
    counts: add, incr, get)."""
    import os
    import uuid

    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.ForgivingRedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
    key = f"t-{uuid.uuid4().hex}"
    assert cache.add(key, 0, timeout=10) is True
    assert cache.incr(key) == 1 and cache.incr(key) == 2
    assert cache.get(key) == 2
    cache.delete(key)
    assert cache.get(key, "gone") == "gone"


def test_a_grant_past_its_expiry_does_not_count_swept_or_not(dead_redis, gw, account, api_key):
    """R-USE-6: authorize counts only money that can pay: a trial grant past its expiry
    is left out before the sweep has ended it, and after; pending usage is subtracted."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.services.ledger import expire_due_grants, grant_funds

    grant_funds(
        account,
        cny("5"),
        kind="trial",
        expires_at=timezone.now() - timedelta(seconds=1),
        idempotency_key="T",
    )
    credit_lot(account, cny("1.00"), channel="alipay", idempotency_key="L")
    assert gw("usage", usage(api_key, "r1", "0.25"))[0] == 200
    assert summary(account)["trial"] == 5  # not swept yet
    assert gw("authorize", {"api_key": api_key.raw})[1]["available"] == "0.750000"
    expire_due_grants()
    assert summary(account)["trial"] == 0
    assert gw("authorize", {"api_key": api_key.raw})[1]["available"] == "0.750000"
