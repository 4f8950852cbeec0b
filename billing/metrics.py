"""Metering gauges for /ops/metrics/ (R-USE-5): how far settlement is behind ingestion.

Read at scrape time from the pending rows (the partial index billing_charge_pending
holds only those), so every portal process reports the same, database-wide figure.
"""

from prometheus_client import Gauge

PENDING_EVENTS = Gauge("portal_usage_pending_events", "Usage events received and not settled yet.")
PENDING_AGE = Gauge(
    "portal_usage_pending_oldest_seconds",
    "Age of the oldest unsettled usage event (0 when none): the settlement lag.",
)


def _summary():
    from .services.settlement import pending_summary

    try:
        return pending_summary()
    except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
        return {"events": float("nan"), "oldest_age": float("nan")}


PENDING_EVENTS.set_function(lambda: _summary()["events"])
PENDING_AGE.set_function(lambda: _summary()["oldest_age"])
