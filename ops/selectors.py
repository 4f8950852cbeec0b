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
