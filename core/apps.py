from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Audit and workflow"

    def ready(self):
        from .staff import sync_staff_groups

        post_migrate.connect(sync_staff_groups, dispatch_uid="core.sync_staff_groups")
