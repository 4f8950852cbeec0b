"""Disputes open, by state and age, and those past a deadline, for /ops/metrics/ (issue
26): read at scrape time."""

from ops.metrics import register_scrape


def _dispute_figures():
    import time

    from prometheus_client.core import GaugeMetricFamily

    from .selectors import open_dispute_figures

    now = time.time()
    open_ = GaugeMetricFamily(
        "portal_disputes_open", "Disputes not closed, by state.", labels=["state"]
    )
    oldest = GaugeMetricFamily(
        "portal_disputes_open_oldest_seconds",
        "Age of the oldest dispute in each state (since it was opened).",
        labels=["state"],
    )
    past = GaugeMetricFamily(
        "portal_disputes_past_deadline",
        "Disputes still awaiting evidence after their deadline (the deadline job is behind).",
    )
    overdue = GaugeMetricFamily(
        "portal_disputes_debt_overdue", "Disputes whose debt is past due and not escalated yet."
    )
    rows = open_dispute_figures()
    for state, row in sorted(rows.items()):
        open_.add_metric([state], row["n"])
        oldest.add_metric([state], max(0.0, now - row["oldest"].timestamp()))
    past.add_metric([], sum(row["past_deadline"] for row in rows.values()))
    overdue.add_metric([], sum(row["debt_overdue"] for row in rows.values()))
    return [open_, oldest, past, overdue]


register_scrape(_dispute_figures)
