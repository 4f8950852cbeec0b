"""Money clocks and notice delivery on separate Celery queues (issue 24 point 8)."""

from pathlib import Path

from config.celery import route_task

ROOT = Path(__file__).resolve().parent.parent.parent


def test_money_clocks_and_notices_take_separate_queues():
    """Issue 24 point 8: grant expiry, deadlines, debts and settlement never queue behind
    10,000 notices: they route to `money`, notice delivery and reminders to `notices`."""
    for job in ("expire_grants", "dispute_deadlines", "dispute_debts", "settle_usage"):
        assert route_task(f"ops.job.{job}", (), {}, {}) == {"queue": "money"}, job
    for job in ("deliver_notices", "grant_expiry_reminders", "dispute_reminders"):
        assert route_task(f"ops.job.{job}", (), {}, {}) == {"queue": "notices"}, job
    assert route_task("celery.chord_unlock", (), {}, {}) is None


def test_the_run_script_serves_both_queues():
    """Issue 24 point 8: the embedded run's worker consumes both queues."""
    script = (ROOT / "scripts" / "run.sh").read_text()
    assert "-Q money,notices,celery" in script
