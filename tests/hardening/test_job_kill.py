"""Jobs heal by themselves (issue 13): a worker killed by a signal mid-job leaves neither
a lease held for ten minutes nor a run marked running forever; the next run takes over at
once, closes the dead run as failed with a staff alert, and finishes the work exactly once.
A real process, a real SIGKILL, on PostgreSQL (the worker and the test share the database).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from notices.models import Notice
from ops.models import JobLease, JobRun, StaffAlert
from ops.services import holder_is_gone, lease_token, run_job
from tests.factories import UserFactory, agreement_notice
from tests.workers import database_url

from . import slow_job

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def killable():
    slow_job.register()
    yield slow_job.JOB
    slow_job.unregister()


def test_a_dead_holder_on_this_host_is_recognised():
    """Issue 13: a lease token names host and pid; a pid that no longer runs is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host_token = lease_token()
    dead = host_token.replace(f":{os.getpid()}:", f":{proc.pid}:")
    assert holder_is_gone(dead)
    assert not holder_is_gone(host_token)  # this process
    assert not holder_is_gone("other-host:1:abc")  # another host: wait for the lease
    assert not holder_is_gone("legacy-token")


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_is_taken_over_at_once(killable):
    """Issue 13: SIGKILL a worker after a few batches. The next run starts at once (not
    skipped for ten minutes), the killed run is closed as failed with an alert, and every
    row is handled exactly once."""
    user = UserFactory(phone="")
    ids = [agreement_notice(user, key=f"k{i}").pk for i in range(12)]
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SLOW_JOB_PAUSE": "0.5",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.killable_worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = JobRun.objects.filter(job=killable).first()
            if run is not None and run.batches >= 2:
                break
            assert worker.poll() is None, worker.stderr.read()
            time.sleep(0.05)
        else:
            pytest.fail("the worker never got going")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed = JobRun.objects.get(job=killable)
    assert killed.status == "running"
    lease = JobLease.objects.get(job=killable)
    assert lease.held_until > timezone.now()  # still "held" by the dead worker
    assert lease.held_until <= timezone.now() + timezone.timedelta(seconds=61)  # short lease
    done_before = Notice.objects.filter(read_at__isnull=False).count()
    assert 2 <= done_before < 12

    started = time.monotonic()
    resumed = run_job(killable)
    assert resumed.status == "ok", resumed.error
    assert time.monotonic() - started < 60  # resumed within a minute (here: at once)
    killed.refresh_from_db()
    assert killed.status == "failed" and "Abandoned" in killed.error
    assert killed.finished_at is not None
    alert = StaffAlert.objects.get(kind="job_abandoned")
    assert killable in alert.message
    assert resumed.rows_touched == 12 - done_before
    assert set(Notice.objects.filter(read_at__isnull=False).values_list("pk", flat=True)) == set(
        ids
    )
    assert JobLease.objects.get(job=killable).held_until is None
