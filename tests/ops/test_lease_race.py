"""A run skipped or about to take the lease is never closed as abandoned (issue 24 point 8)."""

import pytest

from ops import services
from ops.models import JobRun, StaffAlert
from ops.services import run_job

pytestmark = pytest.mark.django_db


def test_a_live_run_is_never_closed_as_abandoned(clock, temp_job, monkeypatch):
    """Issue 24 point 8: run B is under way (about to take the lease) when run C takes the
    lease first and looks for runs a dead worker left: B is alive, so no "worker died"
    alert names it and B's run is not closed as failed; only a dead holder's run is."""
    temp_job("test_race", lambda now, size: 0)
    real = services._acquire_lease
    calls = {"n": 0}

    def racing(spec, token):
        calls["n"] += 1
        if calls["n"] == 1:  # B is about to take the lease; C gets there first and runs
            inner = run_job("test_race", now=clock)
            assert inner.status == "ok"
        return real(spec, token)

    monkeypatch.setattr(services, "_acquire_lease", racing)
    outer = run_job("test_race", now=clock)
    assert outer.status == "ok"
    assert not StaffAlert.objects.filter(kind="job_abandoned").exists()
    assert not JobRun.objects.filter(job="test_race", status="failed").exists()


def test_a_dead_holders_run_is_still_closed_as_abandoned(clock, temp_job):
    """Issue 24 point 8: a run left marked running (its worker died) is closed as
    abandoned by the next run that takes the lease, with one alert."""
    from django.utils import timezone

    temp_job("test_dead", lambda now, size: 0)
    dead = JobRun.objects.create(
        job="test_dead", triggered_by="beat", clock=clock, started_at=timezone.now()
    )
    assert run_job("test_dead", now=clock).status == "ok"
    dead.refresh_from_db()
    assert dead.status == "failed" and "Abandoned" in dead.error
    assert StaffAlert.objects.filter(kind="job_abandoned").count() == 1
