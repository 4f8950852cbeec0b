"""Ops services: running jobs (leased, logged), syncing their beat schedules, staff alerts."""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import threading
import traceback
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.workflow import apply_transition, transition_map

from .framework import TASK_PREFIX, all_jobs, get_job
from .models import AlertStatus, JobLease, JobRun, JobRunStatus, StaffAlert, TriggeredBy

logger = logging.getLogger(__name__)


# --- running jobs -----------------------------------------------------------------------------


# A lease is short and kept alive by a heartbeat thread while its run works, so a worker
# that dies (SIGKILL, OOM, lost host) leaves a lease that runs out within LEASE_SECONDS,
# and at once when the holder is a process of this host that no longer exists.
LEASE_SECONDS = 60
HEARTBEAT_SECONDS = 15


def lease_token() -> str:
    """host:pid:random: who holds a lease, so a dead holder on this host is recognised."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_is_gone(holder: str) -> bool:
    """True when `holder` names a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:30] or not pid_text.isdigit():
        return False  # another host (or an old-style token): wait for the lease to run out
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # a zombie (killed, not yet reaped by its parent) is gone too
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _lease_seconds(spec) -> int:
    return min(spec.lease_seconds, LEASE_SECONDS)


def _acquire_lease(spec, token) -> bool:
    now = timezone.now()
    until = now + datetime.timedelta(seconds=_lease_seconds(spec))
    JobLease.objects.get_or_create(job=spec.name)
    taken = (
        JobLease.objects.filter(job=spec.name)
        .filter(Q(held_until__isnull=True) | Q(held_until__lte=now))
        .update(holder=token, held_until=until)
    )
    if taken == 1:
        return True
    lease = JobLease.objects.filter(job=spec.name).first()
    if lease is not None and lease.holder and holder_is_gone(lease.holder):
        # its holder died: take the lease over now (compare-and-set on the dead holder)
        logger.warning("Job %s: lease holder %s is gone; taking over", spec.name, lease.holder)
        return (
            JobLease.objects.filter(job=spec.name, holder=lease.holder).update(
                holder=token, held_until=until
            )
            == 1
        )
    return False


def _renew_lease(spec, token):
    JobLease.objects.filter(job=spec.name, holder=token).update(
        held_until=timezone.now() + datetime.timedelta(seconds=_lease_seconds(spec))
    )


def _release_lease(spec, token):
    JobLease.objects.filter(job=spec.name, holder=token).update(held_until=None, holder="")


class _Heartbeat:
    """Renews a lease every HEARTBEAT_SECONDS from a thread (its own DB connection) while a
    run works, however long one batch takes."""

    def __init__(self, spec, token):
        self.spec, self.token = spec, token
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"lease-{spec.name}", daemon=True)

    def _beat(self):
        from django.db import connection

        try:
            while not self.stop.wait(HEARTBEAT_SECONDS):
                try:
                    _renew_lease(self.spec, self.token)
                except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                    logger.exception("Job %s: lease heartbeat failed", self.spec.name)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.ident is not None:  # started
            self.thread.join(HEARTBEAT_SECONDS)


def close_abandoned_runs(name: str, *, keep=None) -> int:
    """Runs of `name` still marked running while this caller holds the job's lease were
    left by a worker that died: close them as failed and alert staff. Returns how many."""
    stale = JobRun.objects.filter(job=name, status=JobRunStatus.RUNNING)
    if keep is not None:
        stale = stale.exclude(pk=keep)
    ids = list(stale.values_list("pk", flat=True))
    if not ids:
        return 0
    JobRun.objects.filter(pk__in=ids, status=JobRunStatus.RUNNING).update(
        status=JobRunStatus.FAILED,
        finished_at=timezone.now(),
        error="Abandoned: the worker running it stopped (killed or lost) before it finished; "
        "the next run took over its lease and resumes the work.",
    )
    _metric_run(name, "abandoned", len(ids))
    raise_alert(
        "job_abandoned",
        f"Job {name}: {len(ids)} run(s) left running by a worker that died were closed as "
        "failed; the job resumed.",
        {"job": name, "runs": ids},
        key=f"job_abandoned:{name}",
    )
    return len(ids)


def _metric_run(name, status, n=1):
    try:
        from .metrics import JOB_RUNS
    except ImportError:  # pragma: no cover
        return
    # The last success is read from JobRun at scrape time (ops.metrics): true across processes
    JOB_RUNS.labels(name, status).inc(n)


def run_job(
    name: str,
    *,
    triggered_by: str = TriggeredBy.COMMAND,
    user=None,
    user_id=None,
    now: datetime.datetime | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> JobRun:
    """Run a job's batches until one comes back short; returns the recorded JobRun.

    Only one run of a job at a time holds its lease; a second concurrent run is
    recorded as skipped and touches nothing. A failure is recorded (and raised
    to staff as an alert), never re-raised: the batches already done stay done
    and the next run continues from there.
    """
    spec = get_job(name)
    if triggered_by not in TriggeredBy.values:
        raise ValueError(f"Unknown trigger {triggered_by!r}")
    size = batch_size or spec.batch_size
    cap = max_batches or spec.max_batches
    clock = now or timezone.now()
    started = timezone.now()
    token = lease_token()
    # The lease first, then the run's row (issue 24): a run is ever marked running only
    # while it holds the lease, so a run marked running that the next lease holder finds
    # belongs to a holder that is gone, never to a live run that is about to be skipped.
    if not _acquire_lease(spec, token):
        run = JobRun.objects.create(
            job=name,
            triggered_by=triggered_by,
            triggered_by_user_id=getattr(user, "pk", None) or user_id,
            clock=clock,
            started_at=started,
            status=JobRunStatus.SKIPPED,
            error="Another run of this job holds its lease; nothing done.",
            finished_at=timezone.now(),
        )
        _metric_run(name, JobRunStatus.SKIPPED)
        return run
    try:
        run = JobRun.objects.create(
            job=name,
            triggered_by=triggered_by,
            triggered_by_user_id=getattr(user, "pk", None) or user_id,
            clock=clock,
            started_at=started,
            status=JobRunStatus.RUNNING,
        )
    except BaseException:
        _release_lease(spec, token)
        raise
    heartbeat = _Heartbeat(spec, token)
    try:
        close_abandoned_runs(name, keep=run.pk)
        heartbeat.__enter__()
        for _ in range(cap):
            touched = int(spec.fn(clock, size) or 0)
            run.rows_touched += touched
            run.batches += 1
            JobRun.objects.filter(pk=run.pk).update(
                rows_touched=run.rows_touched, batches=run.batches
            )
            _renew_lease(spec, token)
            if touched < size:
                break
        run.status = JobRunStatus.OK
    except Exception as exc:
        logger.exception("Job %s failed (run %s)", name, run.pk)
        run.status = JobRunStatus.FAILED
        run.error = traceback.format_exc()[-8000:]
        raise_alert(
            "job_failed",
            f"Job {name} failed: {type(exc).__name__}: {str(exc)[:300]}",
            {"job": name, "run": run.pk},
            key=f"job_failed:{name}",
        )
    finally:
        heartbeat.__exit__(None, None, None)
        _release_lease(spec, token)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "rows_touched", "batches"])
        _metric_run(name, run.status)
    return run


def queue_job(name: str, *, user=None) -> JobRun | None:
    """Run a job by hand for staff: queued to the Celery worker, or inline when Celery is eager.

    Returns the JobRun when it ran inline, None when it was queued.
    """
    from celery import current_app

    spec = get_job(name)
    if current_app.conf.task_always_eager:
        return run_job(name, triggered_by=TriggeredBy.MANUAL, user=user)
    spec.task.apply_async(
        kwargs={"triggered_by": TriggeredBy.MANUAL, "user_id": getattr(user, "pk", None)}
    )
    return None


# --- beat schedules -----------------------------------------------------------------------------


def _schedule_fields(spec):
    from django.conf import settings
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    if isinstance(spec.schedule, str):
        minute, hour, dom, month, dow = spec.schedule.split()
        fields = {
            "minute": minute,
            "hour": hour,
            "day_of_month": dom,
            "month_of_year": month,
            "day_of_week": dow,
            "timezone": settings.TIME_ZONE,
        }
        # Staff may have made identical schedules in admin: reuse the first, never fail.
        crontab = CrontabSchedule.objects.filter(**fields).order_by(
            "id"
        ).first() or CrontabSchedule.objects.create(**fields)
        return {"crontab": crontab, "interval": None}
    seconds = spec.schedule
    if isinstance(seconds, datetime.timedelta):
        seconds = int(seconds.total_seconds())
    fields = {"every": int(seconds), "period": IntervalSchedule.SECONDS}
    interval = IntervalSchedule.objects.filter(**fields).order_by(
        "id"
    ).first() or IntervalSchedule.objects.create(**fields)
    return {"interval": interval, "crontab": None}


def sync_periodic_tasks(*, reset: bool = False) -> dict:
    """Create a beat PeriodicTask per registered job; keep staff's schedule edits.

    An existing task keeps its schedule and enabled flag (staff may have
    changed or paused it in admin) unless `reset`; tasks of jobs that no longer
    exist are disabled, not deleted, so their history stays readable.
    """
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    counts = {"created": 0, "updated": 0, "disabled": 0}
    known = set()
    with transaction.atomic():
        for spec in all_jobs():
            known.add(spec.task_name)
            kwargs = json.dumps({"triggered_by": TriggeredBy.BEAT})
            task = PeriodicTask.objects.filter(name=spec.name).first()
            if task is None:
                PeriodicTask.objects.create(
                    name=spec.name,
                    task=spec.task_name,
                    kwargs=kwargs,
                    description=spec.description,
                    **_schedule_fields(spec),
                )
                counts["created"] += 1
                continue
            changed = task.task != spec.task_name or task.kwargs != kwargs
            task.task, task.kwargs = spec.task_name, kwargs
            if not task.description:
                task.description, changed = spec.description, True
            if reset:
                for attr, value in _schedule_fields(spec).items():
                    setattr(task, attr, value)
                task.enabled, changed = True, True
            if changed:
                task.save()
                counts["updated"] += 1
        stale = PeriodicTask.objects.filter(task__startswith=TASK_PREFIX, enabled=True).exclude(
            task__in=known
        )
        for task in stale:
            task.enabled = False
            task.save(update_fields=["enabled"])
            counts["disabled"] += 1
        if counts["disabled"]:
            PeriodicTasks.update_changed()
    return counts


# --- staff alerts -----------------------------------------------------------------------------


def raise_alert(
    kind: str, message: str, details: dict | None = None, *, key: str = ""
) -> StaffAlert:
    """Open a staff alert, or fold it into the open alert with the same key.

    Never resolves anything itself: staff acknowledge alerts in admin.
    """
    details = json.loads(json.dumps(details or {}, default=str))
    logger.warning("Staff alert %s raised (key %s)", kind, key or "-")
    from .metrics import STAFF_ALERTS_RAISED

    STAFF_ALERTS_RAISED.labels(kind[:64]).inc()
    now = timezone.now()
    with transaction.atomic():
        if key:
            updated = StaffAlert.objects.filter(key=key, status=AlertStatus.OPEN).update(
                occurrences=F("occurrences") + 1, last_seen_at=now, message=message, details=details
            )
            if updated:
                return StaffAlert.objects.get(key=key, status=AlertStatus.OPEN)
        try:
            with transaction.atomic():
                return StaffAlert.objects.create(
                    kind=kind, key=key, message=message, details=details
                )
        except IntegrityError:  # another worker opened it a moment ago
            StaffAlert.objects.filter(key=key, status=AlertStatus.OPEN).update(
                occurrences=F("occurrences") + 1, last_seen_at=now
            )
            return StaffAlert.objects.get(key=key, status=AlertStatus.OPEN)


def acknowledge_alert(alert: StaffAlert, *, actor, reason: str = "", **form_data) -> StaffAlert:
    """Staff saw the alert and own it now (permission-checked, audited)."""
    return apply_transition(alert, "acknowledge", actor=actor, reason=reason, by=actor)


transition_map(StaffAlert, {"acknowledge": acknowledge_alert})
