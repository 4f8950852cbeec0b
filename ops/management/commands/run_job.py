from django.core.management.base import BaseCommand, CommandError

from ops.framework import all_jobs, get_job
from ops.models import JobRunStatus, TriggeredBy
from ops.services import run_job


class Command(BaseCommand):
    help = "Run a scheduled job now, in this process (e.g. `manage.py run_job expire_grants`)."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="Job name; omit with --list")
        parser.add_argument("--list", action="store_true", help="List the jobs and exit")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--max-batches", type=int, default=None)

    def handle(self, *args, name=None, list=False, batch_size=None, max_batches=None, **opts):
        if list or not name:
            for spec in all_jobs():
                self.stdout.write(f"{spec.name:<28} {spec.schedule_label:<22} {spec.description}")
            return
        try:
            get_job(name)
        except LookupError as exc:
            raise CommandError(str(exc))
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be positive")
        run = run_job(
            name,
            triggered_by=TriggeredBy.COMMAND,
            batch_size=batch_size,
            max_batches=max_batches,
        )
        line = (
            f"{name}: {run.status}, {run.rows_touched} rows in {run.batches} batch(es), "
            f"{run.duration.total_seconds():.2f}s (run #{run.pk})"
        )
        if run.status == JobRunStatus.FAILED:
            raise CommandError(f"{line}\n{run.error}")
        self.stdout.write(line)
