import json

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from core.models import AuditRecord
from notices.models import Notice
from ops.framework import all_jobs
from ops.models import JobRun, StaffAlert
from ops.services import acknowledge_alert, raise_alert, sync_periodic_tasks
from tests.factories import StaffFactory, UserFactory, agreement_notice, grant

pytestmark = pytest.mark.django_db


def test_every_job_has_a_beat_task_in_the_database():
    """§11: schedules are stored in the database (django-celery-beat), one per job."""
    sync_periodic_tasks()
    tasks = {t.name: t for t in PeriodicTask.objects.filter(task__startswith="ops.job.")}
    assert set(tasks) == {spec.name for spec in all_jobs()}
    assert tasks["deliver_notices"].interval.every == 60
    assert tasks["reconcile_ledger"].crontab.hour == "2"
    assert json.loads(tasks["expire_grants"].kwargs) == {"triggered_by": "beat"}


def test_sync_keeps_staff_schedule_changes_and_pauses():
    """Staff change or pause a schedule in admin; re-syncing (migrate) keeps it; reset restores."""
    sync_periodic_tasks()
    task = PeriodicTask.objects.get(name="deliver_notices")
    task.interval = IntervalSchedule.objects.create(every=300, period="seconds")
    task.enabled = False
    task.save()
    sync_periodic_tasks()
    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (300, False)
    sync_periodic_tasks(reset=True)
    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (60, True)


def test_sync_disables_tasks_of_removed_jobs():
    sync_periodic_tasks()
    gone = PeriodicTask.objects.create(
        name="old_job",
        task="ops.job.old_job",
        crontab=CrontabSchedule.objects.create(minute="0"),
    )
    counts = sync_periodic_tasks()
    gone.refresh_from_db()
    assert counts["disabled"] == 1 and gone.enabled is False


def staff_with(*perms):
    user = StaffFactory()
    return grant(user, *perms)


def test_admin_run_now_button_runs_the_job(client, celery_eager, recording_email):
    """§11: staff run a job by hand from an admin button (inline when Celery is eager)."""
    staff = staff_with("ops.view_jobrun", "ops.run_job")
    agreement_notice(UserFactory())
    client.force_login(staff)
    page = client.get(reverse("admin:ops_jobrun_changelist"))
    assert page.status_code == 200
    assert b'name="run-deliver_notices"' in page.content
    resp = client.post(reverse("admin:ops_jobrun_run", args=["deliver_notices"]), follow=True)
    assert resp.status_code == 200
    run = JobRun.objects.get()
    assert (run.job, run.triggered_by, run.triggered_by_user, run.rows_touched) == (
        "deliver_notices",
        "manual",
        staff,
        1,
    )
    assert Notice.objects.get().status == "sent"
    assert b"1 row in 1 batch" in resp.content


def test_admin_run_now_queues_to_the_worker_when_not_eager(client, monkeypatch):
    staff = staff_with("ops.view_jobrun", "ops.run_job")
    from ops.framework import get_job

    queued = []
    monkeypatch.setattr(
        get_job("expire_grants").task, "apply_async", lambda kwargs: queued.append(kwargs)
    )
    client.force_login(staff)
    resp = client.post(reverse("admin:ops_jobrun_run", args=["expire_grants"]), follow=True)
    assert b"queued" in resp.content
    assert queued == [{"triggered_by": "manual", "user_id": staff.pk}]
    assert not JobRun.objects.exists()


def test_admin_run_needs_the_permission(client, celery_eager):
    """Staff without ops.run_job cannot run jobs (no button, 403 on the URL)."""
    staff = staff_with("ops.view_jobrun")
    client.force_login(staff)
    page = client.get(reverse("admin:ops_jobrun_changelist"))
    assert b"Run now" not in page.content
    resp = client.post(reverse("admin:ops_jobrun_run", args=["deliver_notices"]))
    assert resp.status_code == 403
    assert not JobRun.objects.exists()


def test_admin_run_unknown_job_changes_nothing(client, celery_eager):
    client.force_login(staff_with("ops.view_jobrun", "ops.run_job"))
    resp = client.post(reverse("admin:ops_jobrun_run", args=["nope"]), follow=True)
    assert b"No job named" in resp.content
    assert not JobRun.objects.exists()


def test_job_overview_query_count(client, django_assert_max_num_queries):
    client.force_login(staff_with("ops.view_jobrun", "ops.run_job"))
    sync_periodic_tasks()
    for name in ("deliver_notices", "expire_grants", "deliver_notices"):
        from ops.services import run_job

        run_job(name)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("admin:ops_jobrun_changelist")).status_code == 200


def test_alerts_fold_by_key_until_acknowledged():
    """R-LED-4: drift is reported to staff as an alert; repeats fold into the open one."""
    first = raise_alert("ledger_drift", "3 differences", {"n": 3}, key="ledger_drift")
    second = raise_alert("ledger_drift", "4 differences", {"n": 4}, key="ledger_drift")
    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.occurrences, second.message, second.details) == (2, "4 differences", {"n": 4})
    staff = staff_with("ops.acknowledge_staffalert")
    acknowledge_alert(second, actor=staff, reason="looking into it")
    second.refresh_from_db()
    assert (second.status, second.acknowledged_by) == ("acknowledged", staff)
    assert AuditRecord.objects.filter(object_id=str(second.pk), action="acknowledge").exists()
    third = raise_alert("ledger_drift", "again", key="ledger_drift")
    assert third.pk != second.pk and third.status == "open"


def test_acknowledging_needs_permission_and_open_state():
    alert = raise_alert("job_failed", "x")
    with pytest.raises(PermissionDenied):
        acknowledge_alert(alert, actor=StaffFactory())
    alert.refresh_from_db()
    assert alert.status == "open"
    staff = staff_with("ops.acknowledge_staffalert")
    acknowledge_alert(alert, actor=staff)
    from core.workflow import WorkflowError

    with pytest.raises(WorkflowError):
        acknowledge_alert(alert, actor=staff)


def test_admin_bulk_acknowledge(client):
    staff = staff_with("ops.view_staffalert", "ops.acknowledge_staffalert")
    alerts = [raise_alert("job_failed", f"x{i}", key=f"k{i}") for i in range(3)]
    client.force_login(staff)
    url = reverse("admin:ops_staffalert_changelist")
    assert client.get(url).status_code == 200
    resp = client.post(
        url,
        {"action": "acknowledge_selected", "_selected_action": [a.pk for a in alerts]},
        follow=True,
    )
    assert b"3 alert(s) acknowledged" in resp.content
    assert set(StaffAlert.objects.values_list("status", flat=True)) == {"acknowledged"}


def test_sync_survives_duplicate_schedules_made_in_admin():
    """§11: staff may create identical schedules in admin; syncing jobs still works."""
    IntervalSchedule.objects.create(every=60, period="seconds")
    IntervalSchedule.objects.create(every=60, period="seconds")
    CrontabSchedule.objects.create(minute="30", hour="2", timezone="Asia/Shanghai")
    CrontabSchedule.objects.create(minute="30", hour="2", timezone="Asia/Shanghai")
    sync_periodic_tasks(reset=True)
    assert PeriodicTask.objects.get(name="deliver_notices").interval.every == 60
    assert PeriodicTask.objects.get(name="reconcile_ledger").crontab.hour == "2"


def test_auditor_cannot_pause_or_run_schedules_from_the_beat_admin(client):
    """R-ADM-1: read-only staff see schedules but cannot toggle, pause or run them."""
    sync_periodic_tasks()
    task = PeriodicTask.objects.get(name="deliver_notices")
    auditor = grant(StaffFactory(), "django_celery_beat.view_periodictask")
    client.force_login(auditor)
    url = reverse("admin:django_celery_beat_periodictask_changelist")
    page = client.get(url)
    assert page.status_code == 200
    assert b"toggle_tasks" not in page.content
    resp = client.post(url, {"action": "toggle_tasks", "_selected_action": [task.pk]})
    assert resp.status_code in (302, 403)
    task.refresh_from_db()
    assert task.enabled is True
