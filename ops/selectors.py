"""Read paths for the ops pages (fixed query counts)."""

from django.db.models import Count, Max, Min

from .framework import all_jobs
from .models import AlertStatus, JobRun, StaffAlert


def job_overview():
    """Every registered job with its beat task and last run: three queries in all."""
    from django_celery_beat.models import PeriodicTask

    specs = all_jobs()
    names = [spec.name for spec in specs]
    last_ids = (
        JobRun.objects.filter(job__in=names).values("job").annotate(last=Max("id")).values("last")
    )
    last_runs = {run.job: run for run in JobRun.objects.filter(id__in=last_ids)}
    tasks = {
        task.name: task
        for task in PeriodicTask.objects.filter(name__in=names).select_related(
            "interval", "crontab"
        )
    }
    return [
        {
            "spec": spec,
            "name": spec.name,
            "description": spec.description,
            "default_schedule": spec.schedule_label,
            "task": tasks.get(spec.name),
            "last_run": last_runs.get(spec.name),
        }
        for spec in specs
    ]


def open_alert_count():
    return StaffAlert.objects.filter(status=AlertStatus.OPEN).count()


def open_alert_queue():
    """Open staff alerts: (how many, the oldest), one query."""
    row = StaffAlert.objects.filter(status=AlertStatus.OPEN).aggregate(
        n=Count("pk"), oldest=Min("created_at")
    )
    return row["n"], row["oldest"]


def open_alerts_by_kind():
    """{kind: (open alerts, oldest created_at)} for the metrics: one grouped query."""
    rows = (
        StaffAlert.objects.filter(status=AlertStatus.OPEN)
        .order_by()
        .values_list("kind")
        .annotate(n=Count("pk"), oldest=Min("created_at"))
    )
    return {kind: (n, oldest) for kind, n, oldest in rows}


def job_schedule_figures():
    """Per registered job: (interval seconds, or the cron string of a crontab job, last ok
    finish, last failure finish), for the metrics' job figures: two grouped queries."""
    import datetime

    from .models import JobRunStatus

    specs = all_jobs()
    names = [spec.name for spec in specs]
    last = {}
    for status in (JobRunStatus.OK, JobRunStatus.FAILED):
        last[status] = dict(
            JobRun.objects.filter(job__in=names, status=status)
            .order_by()
            .values_list("job")
            .annotate(last=Max("finished_at"))
        )
    figures = {}
    for spec in specs:
        every = spec.schedule
        if isinstance(every, datetime.timedelta):
            every = every.total_seconds()
        figures[spec.name] = (
            every,
            last[JobRunStatus.OK].get(spec.name),
            last[JobRunStatus.FAILED].get(spec.name),
        )
    return figures
