"""The continuous settler as a Celery task chain (R-USE-5): no pause between stretches,
one chain at a time, restarted by the minute job when it died."""

from unittest import mock

import pytest
from django.core.cache import cache

from billing import tasks
from billing.models import UsageEvent
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot
from billing.services.metering import ReportedUsage, record_usage
from ops.services import run_job
from tests.factories import cny

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_chain(settings):
    settings.USAGE_SETTLER_SECONDS = 0.05
    settings.USAGE_SETTLE_IDLE = 0.01
    cache.delete(tasks.CHAIN_KEY)
    yield
    cache.delete(tasks.CHAIN_KEY)


def _pending_event(account, api_key, request_id="e1"):
    credit_lot(account, cny("5"), channel="alipay", idempotency_key=f"L-{request_id}")
    key = resolve_api_keys([api_key.raw])[api_key.raw]
    (r,) = record_usage([ReportedUsage(request_id, key, "m", 1_000_000)])
    assert r.status == "accepted"


def test_a_stretch_settles_and_queues_the_next_one_of_its_chain(account, api_key):
    """R-USE-5: a stretch settles what is pending, then queues the next stretch of the same
    chain before it returns (no gap in settlement); the chain's key is held meanwhile."""
    _pending_event(account, api_key)
    with mock.patch.object(tasks.settle_usage_continuously, "apply_async") as queued:
        settled = tasks.settle_usage_continuously.run()
    assert settled == 1
    assert UsageEvent.objects.get(request_id="e1").transaction_id is not None
    chain = queued.call_args.kwargs["kwargs"]["chain"]
    assert cache.get(tasks.CHAIN_KEY) == chain
    with mock.patch.object(tasks.settle_usage_continuously, "apply_async") as queued_again:
        tasks.settle_usage_continuously.run(chain=chain)
    assert queued_again.call_args.kwargs["kwargs"]["chain"] == chain


def test_a_second_chain_stops_at_once(account, api_key):
    """R-USE-5: while a chain holds its key, another chain started by mistake settles
    nothing and does not continue."""
    cache.set(tasks.CHAIN_KEY, "running-chain", timeout=60)
    _pending_event(account, api_key)
    with mock.patch.object(tasks.settle_usage_continuously, "apply_async") as queued:
        assert tasks.settle_usage_continuously.run() == 0
    assert not queued.called
    assert UsageEvent.objects.get(request_id="e1").transaction_id is None
    assert tasks.start_chain() is False  # alive: the watchdog leaves it be


def test_the_minute_job_settles_and_restarts_a_dead_chain(account, api_key):
    """R-USE-5: the settle_usage job drains what is pending and queues the continuous
    settler when no chain is alive (its key expired with a killed worker)."""
    _pending_event(account, api_key)
    with mock.patch.object(tasks.settle_usage_continuously, "delay") as started:
        run = run_job("settle_usage", triggered_by="command")
    assert run.status == "ok" and run.rows_touched == 1
    assert UsageEvent.objects.get(request_id="e1").transaction_id is not None
    assert started.called


def test_no_chain_when_the_settler_is_a_process_of_its_own(settings):
    """The embedded run sets USAGE_SETTLER_SECONDS=0 for the worker (a dedicated
    `manage.py settle_usage` process settles): the job never queues a chain then."""
    settings.USAGE_SETTLER_SECONDS = 0
    with mock.patch.object(tasks.settle_usage_continuously, "delay") as started:
        assert tasks.start_chain() is False
    assert not started.called
