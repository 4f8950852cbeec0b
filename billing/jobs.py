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
        schedule="*/10 * * * *",
        batch_size=5000,
        description="Expire due trial and discount grants (grant → promotion expense).",
    )
    def expire_grants(now, batch_size):
        from billing.services.ledger import expire_due_grants

        return expire_due_grants(now=now, limit=batch_size)

    @job(
        "reconcile_ledger",
        schedule="30 3 * * *",
        batch_size=200_000,
        description="Prove cached balances equal the postings; alert staff on drift.",
    )
    def reconcile_ledger(now, batch_size):
        from billing.services.ledger import reconcile_all

        reconcile_all(batch_size=batch_size, alert=True)
        return 0  # one full pass per run
