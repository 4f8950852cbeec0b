"""Scheduled ledger jobs (§11): grant expiry and the nightly reconciliation.

Registered with the ops job framework (ops.jobs.job) when it is installed.
"""

try:
    from ops.jobs import job
except ImportError:  # the job framework ships with the ops app
    job = None

if job is not None:

    @job(
        "expire_grants",
        schedule=60,
        batch_size=5000,
        max_batches=400,
        description="Expire due trial and discount grants (grant → promotion expense).",
    )
    def expire_grants(now, batch_size):
        from billing.services.ledger import expire_due_grants

        return expire_due_grants(now=now, limit=batch_size)

    @job(
        "reconcile_ledger",
        schedule="30 2 * * *",
        batch_size=200_000,  # id-range width of each GROUP BY pass in reconcile_all
        max_batches=1,  # one pass over the whole ledger per run
        lease_seconds=3 * 3600,
        description="Prove cached balances equal the postings; alert staff on drift.",
    )
    def reconcile_ledger(now, batch_size):
        from billing.services.ledger import reconcile_all

        report = reconcile_all(batch_size=batch_size, alert=True)
        # One full pass per run; rows touched = findings reported to staff.
        return len(report.drifts) + (1 if report.postings_total_micro else 0)
