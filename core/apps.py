from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = _("Audit and workflow")

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        from .staff import sync_staff_groups

        post_migrate.connect(sync_staff_groups, dispatch_uid="core.sync_staff_groups")

        # Permission names are stored in English when the tables are migrated; the group
        # and user pages list them in the staff member's language (issue 21).
        from django.contrib.auth.models import Permission

        from .history import permission_label

        Permission.__str__ = permission_label

        from .vendor_labels import label_vendor_models

        label_vendor_models()
        # Every app's services declare their models' transition maps
        # (core.workflow.transition_map); load them all before any request or job.
        autodiscover_modules("services")
