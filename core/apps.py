from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Audit and workflow"

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        from .staff import sync_staff_groups

        post_migrate.connect(sync_staff_groups, dispatch_uid="core.sync_staff_groups")
        # Every app's services declare their models' transition maps
        # (core.workflow.transition_map); load them all before any request or job.
        autodiscover_modules("services")
