"""Liveness and readiness (django-health-check) for the load balancer and the orchestrator.

- /ops/health/live: the process answers (no dependency is asked: a database outage must
  not get every web process restarted).
- /ops/health/ready: the database, the cache (Redis when REDIS_URL is set), the Celery
  broker and job freshness (no job's run stuck past its lease, and the scheduled jobs
  ran recently) all answer; 503 otherwise, with the failing check named in the JSON.
"""

from __future__ import annotations

import dataclasses
import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Max
from django.http import JsonResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from .observability import may_read_internals


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (Redis in production, the filesystem broker
    in the embedded default)."""

    timeout = datetime.timedelta(seconds=5)

    def run(self):
        from kombu import Connection

        url = settings.CELERY_BROKER_URL
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        try:
            with Connection(url, transport_options=options, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            raise ServiceUnavailable(f"broker unreachable ({type(exc).__name__})") from exc


@dataclasses.dataclass
class JobFreshness(HealthCheck):
    """No job run is still marked running long after its lease ran out (a dead worker
    nobody took over), and every interval job that has ever run finished ok within
    JOB_STALE_FACTOR of its interval (beat and the workers are alive)."""

    def run(self):
        from django.db import connection

        try:
            self._check()
        finally:
            connection.close()  # this runs in an executor thread: leave no connection open

    def _check(self):
        from .framework import all_jobs
        from .models import JobLease, JobRun, JobRunStatus
        from .services import LEASE_SECONDS

        now = timezone.now()
        grace = datetime.timedelta(seconds=LEASE_SECONDS * 2)
        held = set(JobLease.objects.filter(held_until__gt=now).values_list("job", flat=True))
        stuck = (
            JobRun.objects.filter(status=JobRunStatus.RUNNING, started_at__lt=now - grace)
            .exclude(job__in=held)
            .values_list("job", flat=True)
        )
        stuck = sorted(set(stuck))
        if stuck:
            raise ServiceUnavailable(f"runs left running by a dead worker: {', '.join(stuck)}")
        factor = settings.JOB_STALE_FACTOR
        late = []
        intervals = {
            spec.name: spec.schedule
            for spec in all_jobs()
            if isinstance(spec.schedule, (int, float, datetime.timedelta))
        }
        last_ok = dict(
            JobRun.objects.filter(job__in=list(intervals), status=JobRunStatus.OK)
            .order_by()
            .values_list("job")
            .annotate(last=Max("finished_at"))
        )
        for name, every in intervals.items():
            seconds = every.total_seconds() if hasattr(every, "total_seconds") else every
            last = last_ok.get(name)
            if last is not None and now - last > datetime.timedelta(
                seconds=max(seconds * factor, 600)
            ):
                late.append(name)
        if late:
            raise ServiceUnavailable(f"jobs not run recently: {', '.join(sorted(late))}")


class _View(HealthCheckView):
    """JSON by default; an unhealthy answer is 503 (the service is unavailable, nothing
    crashed)."""

    async def get(self, request, *args, **kwargs):
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
        # Which check failed (and why) is for staff and the metrics token; a load balancer
        # needs only the status code.
        if not await sync_to_async(may_read_internals)(request):
            status = "ok" if response.status_code == 200 else "unavailable"
            return JsonResponse({"status": status}, status=response.status_code)
        return response

    def render_to_response(self, context, **response_kwargs):
        return self.render_to_response_json(response_kwargs.get("status", 200))


live = _View.as_view(checks=[])
ready = _View.as_view(
    checks=[
        "health_check.checks.Database",
        "health_check.checks.Cache",
        Broker,
        JobFreshness,
    ]
)
