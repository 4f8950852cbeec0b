"""Refunds waiting, by state and age, for /ops/metrics/ (issue 26): read at scrape time."""

from ops.metrics import register_scrape


def _refund_figures():
    import time

    from prometheus_client.core import GaugeMetricFamily

    from .selectors import AGE_BANDS, waiting_by_age

    now = time.time()
    waiting = GaugeMetricFamily(
        "portal_refunds_waiting",
        "Refund requests not finished (submitted to payout failed), by state and age band.",
        labels=["state", "age"],
    )
    oldest = GaugeMetricFamily(
        "portal_refunds_waiting_oldest_seconds",
        "Age of the oldest refund request waiting in each state.",
        labels=["state"],
    )
    for state, row in sorted(waiting_by_age().items()):
        for band, _lo, _hi in AGE_BANDS:
            waiting.add_metric([state, band], row[band])
        oldest.add_metric([state], max(0.0, now - row["oldest"].timestamp()))
    return [waiting, oldest]


register_scrape(_refund_figures)
