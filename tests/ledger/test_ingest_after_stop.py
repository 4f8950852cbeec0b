"""Nothing is stored after a freeze or a key lock commits (R-USE-6, issue 24 point 2).

Six threads report usage on one key over real HTTP (pytest-django's live server):
single events and 50-event batches. Once the burst is under way, staff freeze the
account (or lock the key). Every stored event's receipt time (created_at, the
database clock once the insert holds the key and account rows) must precede the
stop: the moment the freeze or lock took its row, before its commit (the audit
record's time, written under that row lock). Without the insert's condition, events
whose request read the key before the commit were stored 3-10 ms after it.
"""

import threading
import time

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from accounts.models import ApiKey, BalanceAccount
from accounts.services import change_standing, lock_api_key
from billing.models import UsageEvent
from billing.services.ledger import credit_lot
from core.models import AuditRecord

from .conftest import cny
from .http import TOKEN, call

THREADS = 6
BATCH = 50


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


def _burst(base_url, raw_key, stop, *, threads=THREADS):
    """Threads send singles (even) and 50-event batches (odd) until refused; `stop()`
    runs once 20 requests were accepted. Returns (accepted ids, refusal codes)."""
    accepted, codes, lock = [], set(), threading.Lock()
    warm = threading.Event()
    sent = [0]

    def event(rid):
        return {"request_id": rid, "api_key": raw_key, "model": "m", "amount": "0.000001"}

    def work(i):
        for n in range(2000):
            if i % 2 == 0:
                status, body = call(base_url, "usage", event(f"s{i}-{n}"))
                rows = [body] if status == 200 else []
                refused = status != 200
                if refused:
                    codes.add(body.get("code"))
            else:
                events = [event(f"b{i}-{n}-{j}") for j in range(BATCH)]
                status, body = call(base_url, "usage/batch", {"events": events})
                assert status == 200, body
                rows = [r for r in body["results"] if r["status"] == "accepted"]
                errors = {r.get("code") for r in body["results"] if r["status"] == "error"}
                codes.update(errors)
                refused = bool(errors)
            with lock:
                accepted.extend(r["request_id"] for r in rows if r.get("status") == "accepted")
                sent[0] += 1
                if sent[0] >= 20:
                    warm.set()
            if refused:
                return

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    try:
        assert warm.wait(60), "the burst did not start"
        stop()
    finally:
        for w in workers:
            w.join(120)
        connection.close()
    return accepted, codes


def _stop_time(model, pk, action):
    return AuditRecord.objects.get(
        content_type=ContentType.objects.get_for_model(model), object_id=str(pk), action=action
    ).at


def _check(accepted, stopped_at):
    stored = UsageEvent.objects.all()
    assert stored.count() == len(accepted) > 0
    late = [
        (e.request_id, (e.created_at - stopped_at).total_seconds() * 1000)
        for e in stored.filter(created_at__gte=stopped_at)
    ]
    assert not late, f"events stored after the stop (ms): {late[:10]}"


@pytest.mark.django_db(transaction=True)
def test_nothing_stored_after_a_freeze_commits_r_use_6(live_server, account, api_key):
    """R-USE-6 (issue 24 point 2): a burst of singles and 50-event batches over HTTP on one
    key, then a freeze: no stored event was received after the freeze took the account
    row (so none after its commit), and every later request is refused account_frozen."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    committed = []

    def freeze():
        change_standing(account, "freeze", reason="order", authority="Court", document_number="9")
        committed.append(time.monotonic())

    accepted, codes = _burst(live_server.url, api_key.raw, freeze)
    assert committed and codes == {"account_frozen"}
    _check(accepted, _stop_time(BalanceAccount, account.pk, "freeze"))


@pytest.mark.django_db(transaction=True)
def test_nothing_stored_after_a_key_lock_commits_r_use_6(live_server, account, api_key):
    """R-USE-6 (issue 24 point 2): the same burst, then staff lock the key: no stored event
    was received after the lock took the key row; later requests are refused key_locked."""
    from tests.factories import StaffFactory, grant

    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    staff = grant(StaffFactory(), "accounts.lock_apikey")

    def lock():
        lock_api_key(ApiKey.objects.get(pk=api_key.pk), actor=staff, reason="abuse")

    accepted, codes = _burst(live_server.url, api_key.raw, lock)
    assert codes == {"key_locked"}
    _check(accepted, _stop_time(ApiKey, api_key.pk, "lock"))
