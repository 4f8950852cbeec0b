"""The job decorator (ops.jobs.job, the contract name) and the ledger's scheduled jobs.

The ledger functions are imported lazily: the billing ledger is built on its
own branch, and until it is installed these jobs do nothing rather than fail.
"""

import logging
from importlib import import_module

from .framework import job

__all__ = ["job", "expire_grants", "reconcile_ledger"]

logger = logging.getLogger(__name__)


def ledger():
    """billing.services.ledger, or None while the ledger is not installed."""
    try:
        return import_module("billing.services.ledger")
    except ImportError:
        return None


@job(
    "expire_grants",
    schedule=60,
    batch_size=5000,
    max_batches=400,
    description="Trial and discount grants past their expiry: the unused part leaves the balance.",
)
def expire_grants(now, batch_size):
    """R-TOP-5: at expiry the unused part of each grant leaves with a ledger transaction."""
    module = ledger()
    if module is None:
        logger.info("expire_grants: billing ledger not installed, nothing to do")
        return 0
    return module.expire_due_grants(now=now, limit=batch_size)


def drift_items(report):
    """The drift entries of a reconciliation report, whatever shape the ledger returns."""
    if report is None:
        return []
    if isinstance(report, (list, tuple)):
        return list(report)
    for attr in ("drift", "drifts", "items", "problems"):
        value = getattr(report, attr, None)
        if value is None and isinstance(report, dict):
            value = report.get(attr)
        if value is not None:
            return list(value)
    return []


@job(
    "reconcile_ledger",
    schedule="30 2 * * *",
    batch_size=200_000,  # id-range width of each GROUP BY pass in reconcile_all
    max_batches=1,
    lease_seconds=3 * 3600,
    description="Nightly: cached balances, lots and grants vs postings; zero-sum of every "
    "transaction. Drift raises a staff alert and is never corrected automatically.",
)
def reconcile_ledger(now, batch_size):
    """R-LED-4: prove cached == sum(postings); report drift to staff, never auto-correct."""
    from .services import raise_alert

    module = ledger()
    if module is None:
        logger.info("reconcile_ledger: billing ledger not installed, nothing to do")
        return 0
    report = module.reconcile_all(batch_size=batch_size)
    drift = drift_items(report)
    unbalanced = getattr(report, "postings_total_micro", 0) or 0
    if drift or unbalanced or getattr(report, "ok", True) is False:
        summary = getattr(report, "summary", None)
        message = (
            summary()
            if callable(summary)
            else (
                f"Reconciliation found {len(drift)} difference(s) between cached balances "
                "and the ledger postings."
            )
        )
        raise_alert(
            "ledger_drift",
            f"{message}\nNothing was corrected automatically."[:5000],
            {
                "total": len(drift),
                "postings_total_micro": unbalanced,
                "items": [_plain(item) for item in drift[:200]],
            },
            key="ledger_drift",
        )
    # One pass covers the whole ledger (max_batches=1); rows touched = findings reported.
    return len(drift)


def _plain(item):
    if isinstance(item, dict):
        return item
    if hasattr(item, "_asdict"):
        return item._asdict()
    if hasattr(item, "__dict__"):
        return {k: v for k, v in vars(item).items() if not k.startswith("_")}
    return str(item)
