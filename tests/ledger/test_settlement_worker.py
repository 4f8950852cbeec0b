"""Settlement by a real worker end to end (R-USE-5, R-USE-1): a Celery worker process on
Redis, against the test database, runs the settle_usage job (the minute watchdog: it
settles what is pending and starts the continuous settler, billing.tasks) and the
continuous settler's stretches; the gateway's events arrive over real HTTP before and
while it runs, and end up settled seconds later, exactly once."""

import os
import time
import uuid

import pytest

from billing.models import UsageEvent
from billing.services.ledger import credit_lot
from ops.framework import get_job
from ops.models import JobRun
from tests.workers import celery_worker

from .conftest import cny, summary
from .http import TOKEN, call
from .settlement_checks import assert_books_exact

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

SETTLER_SECONDS = 6  # each stretch of the continuous settler (production: 55)
DEFAULT_QUEUE = "celery"


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A `celery -A config worker` subprocess (tests/workers.py) on its own queue and the
    default one, where the continuous settler queues its next stretch; each stretch
    lasts SETTLER_SECONDS."""
    if not os.environ.get("REDIS_URL"):
        yield None  # the redis marker skips (or fail under PORTAL_REQUIRE_SERVICES) each test
        return
    tmp = tmp_path_factory.mktemp("settler-worker")
    queues = [f"test-{uuid.uuid4().hex[:8]}", DEFAULT_QUEUE]
    env = {"USAGE_SETTLER_SECONDS": str(SETTLER_SECONDS), "USAGE_SETTLE_IDLE": "0.05"}
    try:
        with celery_worker(tmp, queues, env=env, stop_timeout=SETTLER_SECONDS + 20) as process:
            yield process
    finally:
        # the chain's next stretch, queued before the worker stopped, must not outlive us
        from django.core.cache import cache

        from billing.tasks import CHAIN_KEY
        from config.celery import app

        app.control.purge()
        cache.delete(CHAIN_KEY)


def _until(worker, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail((worker.tmp / "worker.log").read_text()[-3000:])


def _post_events(url, raw, prefix, batch, singles):
    body = {
        "events": [
            {"request_id": f"{prefix}b{i}", "api_key": raw, "model": "m", "amount": "0.01"}
            for i in range(batch)
        ]
    }
    status, answer = call(url, "usage/batch", body)
    assert (status, answer["accepted"]) == (200, batch)
    for i in range(singles):
        body = {"request_id": f"{prefix}s{i}", "api_key": raw, "model": "m", "amount": "0.5"}
        status, answer = call(url, "usage", body)
        assert (status, answer["status"]) == (200, "accepted")


def test_a_real_worker_settles_events_posted_over_http(worker, live_server, settings, account):
    """R-USE-5 / R-USE-1: 305 events posted over HTTP (a 300-event batch and 5 single
    calls) are settled when the worker runs the settle_usage job (its run records 305);
    the job starts the continuous settler, which settles 305 more events posted while it
    runs, seconds after they were received. Every event once, the books exact."""
    from django.core.cache import cache

    from accounts.services import create_api_key
    from billing.tasks import CHAIN_KEY

    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    cache.delete(CHAIN_KEY)
    _key, raw = create_api_key(account.user, name="gw")
    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L")
    _post_events(live_server.url, raw, "a", 300, 5)
    assert UsageEvent.objects.filter(transaction__isnull=True).count() == 305

    get_job("settle_usage").task.apply_async(kwargs={"triggered_by": "manual"}, queue=worker.queue)
    _until(worker, lambda: JobRun.objects.filter(job="settle_usage", status="ok").exists())
    run = JobRun.objects.get(job="settle_usage")
    assert (run.triggered_by, run.rows_touched) == ("manual", 305)
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()

    _until(worker, lambda: cache.get(CHAIN_KEY) is not None)  # the continuous settler is on
    _post_events(live_server.url, raw, "b", 300, 5)
    _until(worker, lambda: not UsageEvent.objects.filter(transaction__isnull=True).exists())
    assert UsageEvent.objects.count() == 610
    later = UsageEvent.objects.filter(request_id__startswith="b")
    lag = max((c.settled_at - c.created_at).total_seconds() for c in later)
    assert lag < 3, lag  # seconds behind, not a minute
    assert summary(account)["cash"] == 20 - 2 * (3 + cny("2.5").amount)
    assert assert_books_exact() >= 2
