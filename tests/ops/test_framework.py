import datetime
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from notices.models import Notice
from ops.framework import REGISTRY, job
from ops.models import JobLease, JobRun, StaffAlert
from ops.services import run_job
from tests.factories import UserFactory, agreement_notice

pytestmark = pytest.mark.django_db


def pending_notices(n, prefix="n"):
    user = UserFactory(phone="")
    return [agreement_notice(user, key=f"{prefix}{i}").pk for i in range(n)]


def test_job_runs_in_bounded_batches_and_logs_the_run(clock, recording_email):
    """§11: a job works in bounded batches and records started/finished/rows/batches."""
    pending_notices(5)
    run = run_job("deliver_notices", now=clock, batch_size=2)
    assert (run.status, run.rows_touched, run.batches) == ("ok", 5, 3)
    assert run.triggered_by == "command" and run.clock == clock
    assert run.finished_at >= run.started_at
    assert len(recording_email.sent) == 5
    assert Notice.objects.filter(status="sent").count() == 5


def test_running_a_job_twice_changes_nothing_the_second_time(clock, recording_email):
    """§11: jobs are idempotent: a second run finds nothing to do."""
    pending_notices(3)
    run_job("deliver_notices", now=clock)
    again = run_job("deliver_notices", now=clock)
    assert (again.status, again.rows_touched) == ("ok", 0)
    assert len(recording_email.sent) == 3


def test_crash_halfway_then_rerun_finishes_the_rest_once(clock, temp_job):
    """§11: a run that crashes after some batches keeps them; the re-run does the rest once."""
    ids = pending_notices(7)
    handled = []
    state = {"calls": 0, "crash_on": 2}

    def mark_batch(now, batch_size):
        state["calls"] += 1
        with transaction.atomic():
            batch = list(
                Notice.objects.select_for_update(skip_locked=True)
                .filter(read_at__isnull=True)
                .order_by("id")[:batch_size]
            )
            Notice.objects.filter(pk__in=[n.pk for n in batch]).update(read_at=now)
            if state["calls"] == state["crash_on"]:
                raise RuntimeError("worker lost its database connection")
            handled.extend(n.pk for n in batch)
        return len(batch)

    temp_job("test_mark_batch", mark_batch, batch_size=3)
    failed = run_job("test_mark_batch", now=clock)
    assert failed.status == "failed" and "worker lost" in failed.error
    assert (failed.rows_touched, failed.batches) == (3, 1)
    assert Notice.objects.filter(read_at__isnull=False).count() == 3  # batch 2 rolled back
    alert = StaffAlert.objects.get(key="job_failed:test_mark_batch")
    assert alert.status == "open"
    assert JobLease.objects.get(job="test_mark_batch").held_until is None  # lease released
    state["crash_on"] = None
    again = run_job("test_mark_batch", now=clock)
    assert (again.status, again.rows_touched) == ("ok", 4)
    assert sorted(handled) == sorted(ids)  # each row handled exactly once


def test_a_held_lease_skips_the_second_run_and_expires(clock, temp_job):
    """§11: two runs of one job never overlap; a dead worker's lease runs out."""
    from django.utils import timezone

    calls = []
    temp_job("test_leased", lambda now, size: calls.append(now) or 0)
    JobLease.objects.create(
        job="test_leased", holder="other", held_until=timezone.now() + datetime.timedelta(hours=1)
    )
    skipped = run_job("test_leased", now=clock)
    assert skipped.status == "skipped" and calls == []
    JobLease.objects.filter(job="test_leased").update(
        held_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert run_job("test_leased", now=clock).status == "ok"
    assert calls == [clock]


def test_max_batches_bounds_a_run(clock, temp_job):
    temp_job("test_endless", lambda now, size: size, batch_size=10, max_batches=4)
    run = run_job("test_endless", now=clock)
    assert (run.status, run.batches, run.rows_touched) == ("ok", 4, 40)


def test_job_decorator_refuses_bad_schedules():
    with pytest.raises(ValueError):
        job("bad", schedule="every minute")(lambda now, size: 0)
    with pytest.raises(ValueError):
        job("bad", schedule=0)(lambda now, size: 0)
    assert "bad" not in REGISTRY


def test_run_job_command(clock, recording_email, capsys):
    """§11: every job can be run by hand with manage.py run_job NAME."""
    pending_notices(2)
    call_command("run_job", "deliver_notices")
    out = capsys.readouterr().out
    assert "deliver_notices: ok, 2 rows" in out
    run = JobRun.objects.get()
    assert run.triggered_by == "command"
    call_command("run_job", "--list")
    assert "expire_grants" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No job named"):
        call_command("run_job", "nope")
    with pytest.raises(CommandError):
        call_command("run_job", "deliver_notices", "--batch-size", "0")


def test_run_job_command_reports_failure(temp_job):
    def boom(now, size):
        raise ValueError("bad data")

    temp_job("test_boom", boom)
    with pytest.raises(CommandError, match="failed"):
        call_command("run_job", "test_boom")
    assert JobRun.objects.get(job="test_boom").status == "failed"


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_one_job_do_the_work_once(clock, recording_email):
    """§11 on PostgreSQL: four workers start the same job at once; every row is done once."""
    ids = pending_notices(40)
    barrier = threading.Barrier(4)
    runs, errors = [], []

    def worker():
        try:
            barrier.wait()
            runs.append(run_job("deliver_notices", triggered_by="beat", now=clock, batch_size=5))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {r.status for r in runs} <= {"ok", "skipped"}
    assert sum(r.rows_touched for r in runs) == 40
    sent = sorted(int(m.extra_headers["X-Portal-Notice"]) for m in recording_email.sent)
    assert sent == sorted(ids)
