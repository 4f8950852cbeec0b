"""The reconciliation job's rule against a stand-in ledger (the real one: test_ledger_jobs)."""

from dataclasses import dataclass, field

import pytest

from ops import jobs
from ops.models import StaffAlert
from ops.services import run_job

pytestmark = pytest.mark.django_db


@dataclass
class Report:
    drifts: list = field(default_factory=list)
    postings_total_micro: int = 0

    @property
    def ok(self):
        return not self.drifts and not self.postings_total_micro

    def summary(self):
        return f"Ledger drift: {len(self.drifts)} finding(s)."


class FakeLedger:
    def __init__(self, report):
        self.report = report
        self.calls = []

    def reconcile_all(self, batch_size):
        self.calls.append(batch_size)
        return self.report


def test_clean_ledger_raises_no_alert(monkeypatch, clock):
    """R-LED-4: a reconciled ledger opens no alert."""
    fake = FakeLedger(Report())
    monkeypatch.setattr(jobs, "ledger", lambda: fake)
    run = run_job("reconcile_ledger", now=clock)
    assert (run.status, run.rows_touched, run.batches) == ("ok", 0, 1)
    assert fake.calls == [200_000]
    assert not StaffAlert.objects.exists()


def test_drift_raises_one_staff_alert_and_never_corrects(monkeypatch, clock):
    """R-LED-4: drift (or postings not summing to zero) reaches staff as an open alert."""
    drift = [{"what": "grant", "object_id": 7, "cached": 1, "ledger": 0}]
    fake = FakeLedger(Report(drifts=drift))
    monkeypatch.setattr(jobs, "ledger", lambda: fake)
    assert not hasattr(fake, "correct")  # the job has nothing to call but reconcile_all
    run_job("reconcile_ledger", now=clock)
    run_job("reconcile_ledger", now=clock)
    alert = StaffAlert.objects.get()
    assert (alert.kind, alert.status, alert.occurrences) == ("ledger_drift", "open", 2)
    assert alert.details["items"] == drift
    assert "Nothing was corrected" in alert.message
    fake.report = Report(postings_total_micro=5)
    run_job("reconcile_ledger", now=clock)
    assert StaffAlert.objects.get().details["postings_total_micro"] == 5
