"""Staff groups with least privilege (R-ADM-1)."""

import pytest
from django.apps import apps
from django.contrib.auth.models import Group

from core.staff import GROUPS, local_app_labels

pytestmark = pytest.mark.django_db


def test_the_auditor_reads_every_model_of_every_project_app_and_changes_nothing():
    """R-ADM-1: the auditor may view each model of each project app (top-ups included,
    and any app added later without editing a list), and holds no other permission.
    No explicit sync: migrating the test database did it, once, after the last app."""
    auditor = Group.objects.get(name=GROUPS["auditor"])
    held = set(auditor.permissions.values_list("content_type__app_label", "codename"))
    for label in ("accounts", "billing", "topups", "notices", "ops", "core"):
        assert label in local_app_labels()
        for model in apps.get_app_config(label).get_models():
            assert (label, f"view_{model._meta.model_name}") in held, model._meta.label
    assert all(codename.startswith("view_") for _, codename in held)
    assert {"django_celery_beat"} | local_app_labels() >= {label for label, _ in held}


def test_third_party_apps_are_not_project_apps():
    """The virtualenv inside the checkout holds Django's apps, not ours."""
    labels = local_app_labels()
    assert "admin" not in labels and "djmoney" not in labels and "django_celery_beat" not in labels
