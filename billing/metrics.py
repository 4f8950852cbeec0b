"""Metering gauges for /ops/metrics/ (R-USE-5): how far settlement is behind ingestion.

Read at scrape time from the pending rows (the partial index billing_charge_pending
holds only those), so every portal process reports the same, database-wide figure;
ops.metrics runs it on each scrape.
"""

from prometheus_client import Counter

from ops.metrics import register_scrape


def _metering_figures():
    """Settlement backlog and lag (R-USE-5), one aggregate over the pending partial index."""
    from prometheus_client.core import GaugeMetricFamily

    from .services.settlement import pending_summary

    summary = pending_summary()
    events = GaugeMetricFamily(
        "portal_usage_pending_events", "Usage events received and not settled yet."
    )
    events.add_metric([], summary["events"])
    age = GaugeMetricFamily(
        "portal_usage_pending_oldest_seconds",
        "Age of the oldest unsettled usage event (0 when none): the settlement lag.",
    )
    age.add_metric([], summary["oldest_age"])
    return [events, age]


# Read at scrape time, not a process's gauge: under PROMETHEUS_MULTIPROC_DIR a function
# gauge would report each process's last value, not the database's.
register_scrape(_metering_figures)

# The user's own API (/api/v1/me/, issue 27): answers by endpoint and status, and calls
# refused for a missing, unknown or revoked API key (per-address throttle and alert).
ME_API_REQUESTS = Counter(
    "portal_me_api_requests_total",
    "User API answers by endpoint and status.",
    ["endpoint", "status"],
)
ME_API_AUTH_FAILURES = Counter(
    "portal_me_api_auth_failures_total",
    "User API calls refused for a missing, unknown or revoked API key.",
)
