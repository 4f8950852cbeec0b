from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_jobs(sender, using="default", **kwargs):
    from django.db import connections

    tables = connections[using].introspection.table_names()
    if "django_celery_beat_periodictask" not in tables:
        return
    from .services import sync_periodic_tasks

    sync_periodic_tasks()


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations (jobs and alerts)"

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        # Every app's jobs.py registers its @job functions; then each gets its Celery task.
        autodiscover_modules("jobs")
        from . import tasks

        tasks.register_all()
        post_migrate.connect(_sync_jobs, sender=self, dispatch_uid="ops.sync_jobs")
