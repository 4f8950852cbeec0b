"""The job standard: `@job(...)` functions, one batch per call, run by Celery beat.

A job function has the signature ``fn(now, batch_size) -> int``: it does ONE
bounded batch of work as of ``now`` (the clock the run was started with),
commits it itself (services are one transaction each), and returns the rows it
touched. The runner (ops.services.run_job) calls it repeatedly until a batch
comes back short, holds a lease so two workers never run the same job at once,
and records a JobRun. The function itself must still lock its rows with
``select_for_update(skip_locked=True)`` and be idempotent: a lease can expire
under a worker that hangs, and a crash halfway leaves half the work done.

Jobs live in each app's ``jobs.py`` (imported by ops' AppConfig.ready), get a
Celery task named ``ops.job.<name>`` (ops.tasks, made once every jobs.py is
loaded) and a django-celery-beat PeriodicTask (created at migrate or by
``manage.py sync_jobs``; staff edit it in admin). This module is the registry
only: it imports nothing of the runner, so the runner may import it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TASK_PREFIX = "ops.job."
REGISTRY: dict[str, JobSpec] = {}


@dataclass
class JobSpec:
    name: str
    fn: Callable[[datetime.datetime, int], int]
    schedule: Any  # int seconds / timedelta (interval) or a 5-field cron string
    batch_size: int = 1000
    description: str = ""
    max_batches: int = 1000
    lease_seconds: int = 600
    task: Any = field(default=None, repr=False)

    @property
    def task_name(self) -> str:
        return TASK_PREFIX + self.name

    @property
    def schedule_label(self) -> str:
        if isinstance(self.schedule, str):
            return f"cron {self.schedule}"
        return f"every {int(_seconds(self.schedule))}s"


def _seconds(schedule) -> float:
    if isinstance(schedule, datetime.timedelta):
        return schedule.total_seconds()
    return float(schedule)


def validate_schedule(schedule):
    if isinstance(schedule, str):
        if len(schedule.split()) != 5:
            raise ValueError(f"Cron schedule needs 5 fields (m h dom mon dow): {schedule!r}")
        return
    if isinstance(schedule, (int, datetime.timedelta)) and _seconds(schedule) >= 1:
        return
    raise ValueError(f"Schedule must be seconds, a timedelta or a cron string: {schedule!r}")


def job(
    name: str,
    *,
    schedule,
    batch_size: int = 1000,
    description: str = "",
    max_batches: int = 1000,
    lease_seconds: int = 600,
):
    """Register ``fn(now, batch_size) -> rows touched`` as a scheduled, hand-runnable job."""
    validate_schedule(schedule)
    if batch_size < 1 or max_batches < 1:
        raise ValueError("batch_size and max_batches must be positive")

    def decorate(fn):
        if name in REGISTRY and REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"Job {name!r} is registered twice")
        spec = JobSpec(
            name=name,
            fn=fn,
            schedule=schedule,
            batch_size=batch_size,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            max_batches=max_batches,
            lease_seconds=lease_seconds,
        )
        REGISTRY[name] = spec
        fn.job = spec
        return fn

    return decorate


def get_job(name: str) -> JobSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise LookupError(f"No job named {name!r}; known: {', '.join(sorted(REGISTRY))}")


def all_jobs() -> list[JobSpec]:
    return [REGISTRY[k] for k in sorted(REGISTRY)]
