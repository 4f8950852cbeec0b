"""Health, metrics and structured logs (issue 13)."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from ops.models import JobRun
from ops.observability import JsonFormatter, RedactFilter, RequestIdFilter, redact

pytestmark = pytest.mark.django_db(transaction=True)  # the checks use their own connections


def test_liveness_answers_without_asking_anything(client):
    """Issue 13: /ops/health/live/ is 200 JSON."""
    resp = client.get("/ops/health/live/", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("application/json")


def test_readiness_checks_database_cache_broker_and_jobs(client):
    """Issue 13: /ops/health/ready/ names every check and is 200 when all answer."""
    resp = client.get("/ops/health/ready/")
    assert resp.status_code == 200, resp.content
    body = json.loads(resp.content)
    names = " ".join(body)
    for check in ("Database", "Cache", "Broker", "JobFreshness"):
        assert check in names


def test_readiness_fails_on_a_run_left_by_a_dead_worker(client):
    """Issue 13: a run still marked running long after any lease: not ready (503)."""
    JobRun.objects.create(
        job="expire_grants",
        triggered_by="beat",
        clock=timezone.now(),
        started_at=timezone.now() - timedelta(hours=1),
    )
    resp = client.get("/ops/health/ready/")
    assert resp.status_code == 503
    assert "expire_grants" in resp.content.decode()


def test_readiness_fails_when_the_broker_is_down(client, settings):
    """Issue 13: a broker that cannot be reached makes the portal not ready."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    resp = client.get("/ops/health/ready/")
    assert resp.status_code == 503
    assert "broker" in resp.content.decode().lower()


def test_metrics_count_gateway_answers_and_jobs(client, settings):
    """Issue 13: /ops/metrics/ exposes gateway answers by endpoint and status, job runs
    and the ledger drift gauge; closed to strangers in production."""
    from tests.ledger.http import TOKEN

    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    client.post(
        "/api/v1/gateway/authorize",
        data=json.dumps({"api_key": "sk-x"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    from ops.services import run_job

    run_job("expire_grants")
    from billing.services.reconcile import reconcile_all

    reconcile_all()
    text = client.get("/ops/metrics/").content.decode()
    assert 'portal_gateway_requests_total{endpoint="authorize",status="200"}' in text
    assert 'portal_job_runs_total{job="expire_grants",status="ok"}' in text
    assert "portal_ledger_drift_findings 0.0" in text
    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = "m" * 40
    assert client.get("/ops/metrics/").status_code == 401
    resp = client.get("/ops/metrics/", HTTP_AUTHORIZATION="Bearer " + "m" * 40)
    assert resp.status_code == 200


def test_every_response_carries_a_request_id(client):
    """Issue 13: the caller's safe X-Request-ID is kept; anything else is replaced."""
    assert client.get("/ops/health/live/", HTTP_X_REQUEST_ID="gw-123")["X-Request-ID"] == "gw-123"
    rid = client.get("/ops/health/live/", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert rid != "bad id\n" and len(rid) == 32


def test_logs_are_json_with_request_id_and_no_personal_data():
    """Issue 13: one JSON object a line, the request id on it, personal data masked."""
    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "user %s phone %s id %s key %s",
        ("wang.lei@example.com", "13812345678", "11010519491231002X", "sk-abcdefghijkl"),
        None,
    )
    RequestIdFilter().filter(record)
    RedactFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "-"
    assert "example.com" not in line["message"] and "13812345678" not in line["message"]
    assert "11010519491231002X" not in line["message"] and "sk-abcdefghijkl" not in line["message"]
    assert redact("amount 12.50 for account 42") == "amount 12.50 for account 42"


def test_readiness_tells_strangers_only_the_status(client, settings):
    """Issue 13: in production the probes answer everyone, but which check failed (and
    why) is only for staff or the metrics token."""
    from tests.factories import StaffFactory

    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = "t" * 40
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    resp = client.get("/ops/health/ready/")
    assert resp.status_code == 503
    assert json.loads(resp.content) == {"status": "unavailable"}
    resp = client.get("/ops/health/ready/", HTTP_AUTHORIZATION="Bearer " + "t" * 40)
    assert resp.status_code == 503 and "broker" in resp.content.decode().lower()
    client.force_login(StaffFactory())
    assert "broker" in client.get("/ops/health/ready/").content.decode().lower()


def test_metrics_show_how_far_settlement_is_behind(client, account, api_key):
    """R-USE-5: /ops/metrics/ shows the unsettled usage events and the age of the oldest
    one (the settlement lag), both back to zero once the settler has run."""
    from billing.models import UsageEvent
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage
    from billing.services.settlement import run_settler

    key = resolve_api_keys([api_key.raw])[api_key.raw]
    record_usage([ReportedUsage(f"m-{i}", key, "m", 10_000) for i in range(3)])
    UsageEvent.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    text = client.get("/ops/metrics/").content.decode()
    assert "portal_usage_pending_events 3.0" in text
    (line,) = [x for x in text.splitlines() if x.startswith("portal_usage_pending_oldest_seconds ")]
    age = float(line.split()[1])
    assert 29 < age < 120
    run_settler(seconds=0)
    text = client.get("/ops/metrics/").content.decode()
    assert "portal_usage_pending_events 0.0" in text
    assert "portal_usage_pending_oldest_seconds 0.0" in text
