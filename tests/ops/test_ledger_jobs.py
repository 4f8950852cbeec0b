"""The ledger's clocks (billing/jobs.py) run through the job framework: grant expiry,
its reminders and notices, and the nightly reconciliation."""

import datetime
from decimal import Decimal

import pytest

from billing.services.reconcile import reconcile
from notices.models import Notice
from ops.models import StaffAlert
from ops.services import run_job
from tests.factories import UserFactory, cny

pytestmark = pytest.mark.django_db

DAY = datetime.timedelta(days=1)
SEC = datetime.timedelta(seconds=1)


@pytest.fixture
def ledger():
    from billing.services import ledger

    return ledger


def trial(ledger, account, amount, expires_at, key, kind="trial"):
    return ledger.grant_funds(
        account, cny(amount), kind=kind, expires_at=expires_at, idempotency_key=key
    )


def summary(account):
    from billing.selectors import balance_summary

    return {k: v.amount for k, v in balance_summary(account).items()}


def test_grant_expiry_job_takes_the_unused_part_at_expiry(ledger, clock):
    """R-TOP-5: at the end of validity the unused part leaves with a ledger transaction."""
    account = UserFactory().balance_account
    grant = trial(ledger, account, "30.00", clock, "t1")
    before = run_job("expire_grants", now=clock - SEC)
    assert before.rows_touched == 0 and summary(account)["trial"] == Decimal("30.00")
    run = run_job("expire_grants", now=clock)
    assert (run.status, run.rows_touched) == ("ok", 1)
    grant.refresh_from_db()
    assert grant.state == "expired" and grant.remaining_micro == 0
    assert summary(account)["trial"] == 0
    assert reconcile(account).ok


def test_grant_expiry_job_is_idempotent(ledger, clock):
    """§11: running the expiry job again moves nothing more."""
    from billing.models import LedgerTransaction

    accounts = [UserFactory().balance_account for _ in range(3)]
    for i, account in enumerate(accounts):
        trial(ledger, account, "10.00", clock - DAY, f"g{i}", kind="discount" if i else "trial")
    first = run_job("expire_grants", now=clock, batch_size=2)
    assert (first.rows_touched, first.batches) == (3, 2)
    count = LedgerTransaction.objects.count()
    again = run_job("expire_grants", now=clock)
    assert again.rows_touched == 0 and LedgerTransaction.objects.count() == count
    assert all(summary(a)["available"] == 0 for a in accounts)


def test_reminder_three_days_before_expiry_once_per_grant(ledger, clock):
    """R-NOT-1 / R-TOP-5: a 'trial_expiring' notice 3 days before expiry, once per grant."""
    user = UserFactory()
    grant = trial(ledger, user.balance_account, "25.00", clock + 3 * DAY, "r1")
    assert run_job("grant_expiry_reminders", now=clock - SEC).rows_touched == 0
    assert run_job("grant_expiry_reminders", now=clock).rows_touched == 1
    assert run_job("grant_expiry_reminders", now=clock + DAY).rows_touched == 0
    notice = Notice.objects.get(user=user)
    assert notice.kind == "trial_expiring"
    assert notice.dedupe_key == f"trial_expiring:{grant.pk}"
    assert "25.00" in notice.body


def test_no_reminder_for_used_up_or_expired_grants(ledger, clock):
    user = UserFactory()
    trial(ledger, user.balance_account, "5.00", clock - SEC, "gone")
    run_job("expire_grants", now=clock)
    assert run_job("grant_expiry_reminders", now=clock).rows_touched == 0
    assert not Notice.objects.filter(kind="trial_expiring").exists()


def test_expired_notice_once_per_expired_grant(ledger, clock):
    """R-NOT-1: trial funds expired → one 'trial_expired' notice per grant, with the amount."""
    user = UserFactory()
    grant = trial(ledger, user.balance_account, "12.00", clock, "e1")
    assert run_job("grant_expired_notices", now=clock).rows_touched == 0  # not expired yet
    run_job("expire_grants", now=clock)
    assert run_job("grant_expired_notices", now=clock + SEC).rows_touched == 1
    assert run_job("grant_expired_notices", now=clock + 2 * SEC).rows_touched == 0
    notice = Notice.objects.get(user=user, kind="trial_expired")
    assert notice.dedupe_key == f"trial_expired:{grant.pk}"
    assert "12.00" in notice.body


def test_reconciliation_drift_raises_an_alert_and_corrects_nothing(ledger, clock):
    """R-LED-4: nightly reconciliation reports drift to staff and never auto-corrects."""
    from billing.models import Grant

    account = UserFactory().balance_account
    grant = trial(ledger, account, "40.00", clock + 30 * DAY, "d1")
    clean = run_job("reconcile_ledger", now=clock)
    assert clean.status == "ok" and not StaffAlert.objects.exists()
    Grant.objects.filter(pk=grant.pk).update(remaining_micro=1)  # corrupt the cache
    run = run_job("reconcile_ledger", now=clock)
    assert run.status == "ok" and run.rows_touched >= 1
    alert = StaffAlert.objects.get(kind="ledger_drift", status="open")
    assert "grant" in alert.message
    grant.refresh_from_db()
    assert grant.remaining_micro == 1  # untouched: staff decide
    run_job("reconcile_ledger", now=clock)
    assert StaffAlert.objects.filter(kind="ledger_drift").count() == 1  # folded, not repeated
