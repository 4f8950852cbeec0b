"""Staff groups with least privilege (R-ADM-1).

Each app lists what each group may do in its own `staff.py` as
STAFF_PERMISSIONS = {group_key: ["app_label.codename", ...]}. The groups are
created by a migration; their permissions are synced after every migrate so a
new app's permissions reach the groups without editing this file.
"""

from importlib import import_module

from django.apps import apps

GROUPS = {
    "cs_agent": "CS agent",
    "finance_approver": "Finance approver",
    "risk_officer": "Risk officer",
    "auditor": "Auditor",
}


def declared_permissions():
    wanted = {key: set() for key in GROUPS}
    for config in apps.get_app_configs():
        try:
            module = import_module(f"{config.name}.staff")
        except ModuleNotFoundError:
            continue
        for key, perms in getattr(module, "STAFF_PERMISSIONS", {}).items():
            wanted[key].update(perms)
    wanted["auditor"].update(view_permissions_for_all_models())
    return wanted


def sync_staff_groups(**kwargs):
    from django.contrib.auth.models import Group, Permission

    for key, perms in declared_permissions().items():
        group, _ = Group.objects.get_or_create(name=GROUPS[key])
        objs = []
        for dotted in sorted(perms):
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                objs.append(perm)
        group.permissions.set(objs)


def view_permissions_for_all_models():
    """The auditor reads everything and changes nothing."""
    return [
        f"{m._meta.app_label}.view_{m._meta.model_name}"
        for m in apps.get_models()
        if m._meta.app_label
        in {"accounts", "billing", "refunds", "notices", "ops", "core", "django_celery_beat"}
    ]
