import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from notices.models import Notice
from notices.services import notify
from ops.framework import get_job
from ops.models import JobRun
from tests.factories import UserFactory


def _database_url():
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_for(predicate, timeout=60, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.3)
    return False


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_runs_the_delivery_job(tmp_path):
    """R-NOT-1 / §11 end to end: a Celery worker process (Redis broker, the test database)
    takes the job's task, runs it, and the notice is sent with its delivery date."""
    user = UserFactory(phone="")
    notice = notify(user, "agreement_published", subject="Agreement 2026.2", body="Read it")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=os.environ["REDIS_URL"],
        PORTAL_VAR_DIR=str(tmp_path),
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed in finally
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        get_job("deliver_notices").task.apply_async(kwargs={"triggered_by": "manual"}, queue=queue)
        done = _wait_for(
            lambda: Notice.objects.filter(pk=notice.pk, status="sent").exists(), process=worker
        )
        assert done, Path(tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    notice.refresh_from_db()
    assert notice.sent_at is not None
    run = JobRun.objects.get(job="deliver_notices")
    assert (run.status, run.triggered_by, run.rows_touched) == ("ok", "manual", 1)
    mails = list((tmp_path / "mail").glob("*.log"))
    assert len(mails) == 1
    assert "Agreement 2026.2" in mails[0].read_text()
