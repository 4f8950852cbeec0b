"""End to end through a real Celery worker process: Redis broker, the test database.

One worker serves the module; each test queues a job's task and waits for its effect.
"""

import datetime
import os
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from notices.models import Notice
from ops.framework import get_job
from ops.models import JobRun
from tests.factories import UserFactory, agreement_notice
from tests.workers import celery_worker

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A `celery -A config worker` subprocess on its own queue."""
    if not os.environ.get("REDIS_URL"):
        yield None  # the redis marker skips (or fail under PORTAL_REQUIRE_SERVICES) each test
        return
    tmp = tmp_path_factory.mktemp("worker")
    with celery_worker(tmp, [f"test-{uuid.uuid4().hex[:8]}"]) as process:
        yield process


def run_through_worker(worker, job_name, done, timeout=60):
    get_job(job_name).task.apply_async(kwargs={"triggered_by": "manual"}, queue=worker.queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        if done():
            return
        time.sleep(0.3)
    pytest.fail(Path(worker.tmp / "worker.log").read_text()[-3000:])


def test_a_real_worker_runs_the_delivery_job(worker):
    """R-NOT-1 / §11: the worker takes the delivery job's task; the notice goes out by
    email and its send date is recorded."""
    user = UserFactory(phone="")
    notice = agreement_notice(user, "2026.2")
    run_through_worker(
        worker, "deliver_notices", lambda: Notice.objects.filter(pk=notice.pk, status="sent")
    )
    notice.refresh_from_db()
    assert notice.sent_at is not None
    run = JobRun.objects.get(job="deliver_notices")
    assert (run.status, run.triggered_by, run.rows_touched) == ("ok", "manual", 1)
    mails = [
        p
        for p in (worker.tmp / "mail").glob("*.log")
        if "Service agreement 2026.2" in p.read_text()
    ]
    assert len(mails) == 1


def test_a_real_worker_runs_the_expiry_job_and_changes_the_ledger(worker):
    """R-TOP-5 / §11: the worker runs expire_grants; the unused trial funds leave the
    balance with a ledger transaction."""
    from djmoney.money import Money

    from billing.models import Grant, LedgerTransaction
    from billing.selectors import balance_summary
    from billing.services.ledger import grant_funds

    account = UserFactory().balance_account
    grant = grant_funds(
        account,
        Money(Decimal("15.00"), "CNY"),
        kind="trial",
        expires_at=timezone.now() - datetime.timedelta(seconds=1),
        idempotency_key="e2e-expiry",
    )
    run_through_worker(
        worker, "expire_grants", lambda: Grant.objects.filter(pk=grant.pk, state="expired")
    )
    assert balance_summary(account)["trial"].amount == 0
    assert LedgerTransaction.objects.filter(account=account, kind="expiry").count() == 1
    assert JobRun.objects.get(job="expire_grants").rows_touched == 1
