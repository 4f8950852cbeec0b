from django.core.management.base import BaseCommand

from ops.services import sync_periodic_tasks


class Command(BaseCommand):
    help = "Create the beat schedule (PeriodicTask) of every job; --reset restores defaults."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Overwrite staff's schedule changes and re-enable paused jobs",
        )

    def handle(self, *args, reset=False, **opts):
        counts = sync_periodic_tasks(reset=reset)
        self.stdout.write(
            f"Job schedules: {counts['created']} created, {counts['updated']} updated, "
            f"{counts['disabled']} disabled (job gone)."
        )
