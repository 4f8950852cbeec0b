"""Prometheus metrics of the portal (prometheus_client), exposed at /ops/metrics/.

Counters and histograms live in each process; with several web and worker processes
set PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode: each process writes
its values to files there, /ops/metrics/ sums them; README "Metrics with several
processes"). Figures that the database knows (settlement backlog, jobs' last success,
open alerts, refunds and disputes waiting) are not process state: they are read at
scrape time by the providers apps register with `register_scrape`, each one a few
aggregate queries over indexed columns. Labels carry codes and names only: never an
account, key, request id or email.
"""

import logging

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

GATEWAY_REQUESTS = Counter(
    "portal_gateway_requests_total",
    "Gateway API answers by endpoint and status code.",
    ["endpoint", "status"],
)
GATEWAY_LATENCY = Histogram(
    "portal_gateway_seconds",
    "Gateway API latency by endpoint.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GATEWAY_AUTH_FAILURES = Counter(
    "portal_gateway_auth_failures_total", "Gateway calls refused for a missing or wrong token."
)
LEDGER_RETRIES = Counter(
    "portal_ledger_retries_total",
    "Ledger transactions run again after a deadlock or serialization failure.",
    ["operation"],
)
JOB_RUNS = Counter("portal_job_runs_total", "Job runs by job and outcome.", ["job", "status"])
LEDGER_DRIFT = Gauge(
    "portal_ledger_drift_findings",
    "Findings of the last ledger reconciliation (0 = no drift).",
    multiprocess_mode="mostrecent",  # the last reconciliation wins, whichever process ran it
)
STAFF_ALERTS_RAISED = Counter(
    "portal_staff_alerts_raised_total",
    "Staff alerts raised (or folded into an open one) by kind: Alipay anomalies, drift, jobs.",
    ["kind"],
)


# --------------------------------------------------------------- read at scrape time

_PROVIDERS: list = []


def register_scrape(provider):
    """Add a function returning prometheus metric families read at scrape time (an app's
    ready() registers its own; a lower layer never imports a higher one)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


class ScrapeCollector(Collector):
    """Runs every registered provider; one failing (the database is down) drops its own
    figures and is counted in portal_scrape_errors, the scrape itself still answers."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        errors = GaugeMetricFamily(
            "portal_scrape_errors",
            "Scrape-time providers that failed on this scrape.",
            labels=["source"],
        )
        for provider in list(_PROVIDERS):
            try:
                families = list(provider())
            except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
                log.warning("metrics provider %s failed", provider.__module__, exc_info=True)
                errors.add_metric([provider.__module__], 1)
                continue
            yield from families
        yield errors

    def describe(self):
        return []  # names depend on the providers; none are registered twice


SCRAPE = ScrapeCollector()


def registry():
    """The registry /ops/metrics/ renders: this process's (single process), or every
    process's files summed plus the scrape-time figures (multiprocess mode)."""
    from django.conf import settings
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    path = getattr(settings, "PROMETHEUS_MULTIPROC_DIR", "")
    if not path:
        _ensure_registered(REGISTRY)
        return REGISTRY
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=path)
    reg.register(SCRAPE)
    return reg


def _ensure_registered(reg):
    if SCRAPE not in getattr(reg, "_collector_to_names", {}):
        reg.register(SCRAPE)


def cron_period_seconds(cron: str) -> float:
    """The longest gap between runs of a 5-field cron, roughly: enough to say a job is late."""
    minute, hour, dom, month, dow = (cron.split() + ["*"] * 5)[:5]
    if minute.startswith("*/") and hour == "*":
        return int(minute[2:] or 1) * 60.0
    if minute == "*":
        return 60.0
    if hour == "*" or hour.startswith("*/"):
        return 3600.0 * (int(hour[2:]) if hour.startswith("*/") else 1)
    if dom == "*" and month == "*" and dow == "*":
        return 86400.0
    if dom == "*" and month == "*":
        return 7 * 86400.0
    return 31 * 86400.0


def _ops_figures():
    """Jobs (interval, last ok, last failure, late) and open staff alerts by kind."""
    import time

    from django.conf import settings
    from prometheus_client.core import GaugeMetricFamily

    from .selectors import job_schedule_figures, open_alerts_by_kind

    now = time.time()
    interval = GaugeMetricFamily(
        "portal_job_interval_seconds",
        "How often each job is scheduled (a cron's period, roughly).",
        labels=["job"],
    )
    last_ok = GaugeMetricFamily(
        "portal_job_last_success_timestamp_seconds",
        "When each job last finished ok (absent: never).",
        labels=["job"],
    )
    last_failed = GaugeMetricFamily(
        "portal_job_last_failure_timestamp_seconds",
        "When each job last failed (absent: never).",
        labels=["job"],
    )
    late = GaugeMetricFamily(
        "portal_job_late",
        "1 when a job that has run before has not finished ok within JOB_STALE_FACTOR of its "
        "interval (10 minutes at least), as the readiness check says.",
        labels=["job"],
    )
    factor = settings.JOB_STALE_FACTOR
    for name, (every, ok_at, failed_at) in sorted(job_schedule_figures().items()):
        if isinstance(every, str):
            every = cron_period_seconds(every)
            allowed = every + 3600  # a cron job may take a while after its minute
        else:
            allowed = max(every * factor, 600)
        interval.add_metric([name], every)
        if ok_at is not None:
            last_ok.add_metric([name], ok_at.timestamp())
            late.add_metric([name], 1 if now - ok_at.timestamp() > allowed else 0)
        if failed_at is not None:
            last_failed.add_metric([name], failed_at.timestamp())
    alerts = GaugeMetricFamily(
        "portal_staff_alerts_open", "Open (unacknowledged) staff alerts by kind.", labels=["kind"]
    )
    oldest = GaugeMetricFamily(
        "portal_staff_alerts_open_oldest_seconds",
        "Age of the oldest open staff alert of each kind.",
        labels=["kind"],
    )
    for kind, (n, first) in sorted(open_alerts_by_kind().items()):
        alerts.add_metric([kind], n)
        oldest.add_metric([kind], max(0.0, now - first.timestamp()))
    return [interval, last_ok, last_failed, late, alerts, oldest]


register_scrape(_ops_figures)
