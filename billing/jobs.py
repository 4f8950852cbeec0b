"""Scheduled ledger jobs (§11): grant expiry, its reminders and notices, and the
nightly reconciliation."""

from django.utils.translation import gettext_lazy as _

from ops.jobs import job

from .services import grant_notices


@job(
    "expire_grants",
    schedule=60,
    batch_size=5000,
    max_batches=400,
    description=_("Expire due trial and discount grants (grant → promotion expense)."),
)
def expire_grants(now, batch_size):
    from .services.ledger import expire_due_grants

    return expire_due_grants(now=now, limit=batch_size)


@job(
    "reconcile_ledger",
    schedule="30 2 * * *",
    batch_size=200_000,  # id-range width of each GROUP BY pass in reconcile_all
    max_batches=1,  # one pass over the whole ledger per run
    lease_seconds=3 * 3600,
    description=_("Prove cached balances equal the postings; alert staff on drift."),
)
def reconcile_ledger(now, batch_size):
    from .services.reconcile import reconcile_all

    report = reconcile_all(batch_size=batch_size, alert=True)
    # One full pass per run; rows touched = findings reported to staff.
    return len(report.drifts) + (1 if report.postings_total_micro else 0)


@job(
    "grant_expiry_reminders",
    schedule="*/15 * * * *",
    batch_size=500,
    description=_("Tell users 3 days ahead that unused trial or bonus funds will expire."),
)
def grant_expiry_reminders(now, batch_size):
    """R-NOT-1 / R-TOP-5: one 'trial_expiring' notice per grant, 3 days before expiry."""
    return grant_notices.send_expiry_reminders(now=now, limit=batch_size)


@job(
    "grant_expired_notices",
    schedule=60,
    batch_size=500,
    description=_("Tell users that unused trial or bonus funds have expired."),
)
def grant_expired_notices(now, batch_size):
    """R-NOT-1 / R-TOP-5: one 'trial_expired' notice per expired grant."""
    return grant_notices.send_expired_notices(now=now, limit=batch_size)


@job(
    "settle_usage",
    schedule=60,
    batch_size=5000,  # events per chunk
    max_batches=1000,
    description=_("Settle pending metered usage; restart the continuous settler if it died."),
)
def settle_usage(now, batch_size):
    """R-USE-5: the watchdog of the continuous settler (billing.tasks): settles one chunk
    of what is pending per batch (the runner calls again until a chunk comes back short)
    and queues the continuous settler when its chain is not alive. Returns the events
    settled."""
    from .services.settlement import settle_chunk
    from .tasks import start_chain

    settled = settle_chunk(batch_size)
    if settled < batch_size:
        start_chain()
    return settled


@job(
    "expire_packages",
    schedule=60,
    batch_size=500,
    description=_("End resource packages past their validity (unused face value → revenue)."),
)
def expire_packages(now, batch_size):
    """R-PKG-3: pending usage settled first, then one ledger transaction per package."""
    from .services.packages import expire_due_packages

    return expire_due_packages(now=now, limit=batch_size)


@job(
    "package_expiry_reminders",
    schedule="*/15 * * * *",
    batch_size=500,
    description=_("Tell users 3 days ahead that an unused resource package will expire."),
)
def package_expiry_reminders(now, batch_size):
    """R-PKG-3: one 'package_expiring' notice per package, 3 days before expiry."""
    from .services.packages import send_expiry_reminders

    return send_expiry_reminders(now=now, limit=batch_size)
