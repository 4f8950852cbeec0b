"""Staff groups with least privilege (R-ADM-1).

Each app lists what each group may do in its own `staff.py` as
STAFF_PERMISSIONS = {group_key: ["app_label.codename", ...]}. The groups are
created by a migration; their permissions are synced after every migrate so a
new app's permissions reach the groups without editing this file.
"""

from importlib import import_module
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.utils.translation import gettext_noop

# Group names are stored in English and shown translated (gettext at display).
GROUPS = {
    "cs_agent": gettext_noop("CS agent"),
    "finance_approver": gettext_noop("Finance approver"),
    "risk_officer": gettext_noop("Risk officer"),
    "auditor": gettext_noop("Auditor"),
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


def sync_staff_groups(app_config=None, **kwargs):
    """Give each group exactly its declared permissions (a handful of queries).

    post_migrate is sent once per app, and the groups need every app's permissions,
    which Django creates on each app's own signal: so the sync runs after the last
    app's, not once per app (it was most of the time a test database flush took).
    """
    from django.contrib.auth.models import Group, Permission

    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    if app_config is not None and app_config is not with_models[-1]:
        return
    existing = {
        (app_label, codename): pk
        for pk, app_label, codename in Permission.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for key, perms in declared_permissions().items():
        group, _ = Group.objects.get_or_create(name=GROUPS[key])
        wanted = [existing.get(tuple(dotted.split(".", 1))) for dotted in sorted(perms)]
        group.permissions.set([pk for pk in wanted if pk is not None])


# Third-party apps whose rows staff work with in the admin (beat schedules).
AUDITED_THIRD_PARTY_APPS = {"django_celery_beat"}


def local_app_labels() -> set[str]:
    """Labels of the project's own apps: those whose code lives in this repository."""
    root = Path(settings.BASE_DIR).resolve()
    labels = set()
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if not path.is_relative_to(root):
            continue
        # a virtualenv inside the checkout holds third-party apps, not ours
        if any(p.startswith(".") or p == "site-packages" for p in path.relative_to(root).parts):
            continue
        labels.add(config.label)
    return labels


def view_permissions_for_all_models():
    """The auditor reads everything and changes nothing: every model of every
    project app (a new app is covered without editing this file), plus beat schedules."""
    labels = local_app_labels() | AUDITED_THIRD_PARTY_APPS
    return [
        f"{m._meta.app_label}.view_{m._meta.model_name}"
        for m in apps.get_models()
        if m._meta.app_label in labels
    ]
