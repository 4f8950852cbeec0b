"""Prometheus metrics of the portal (prometheus_client), exposed at /metrics/.

Counters live in this process; under several gunicorn workers set
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) so /metrics/ sums
them. Labels carry codes and names only: never an account, key, request id or email.
"""

from prometheus_client import Counter, Gauge, Histogram

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
JOB_LAST_SUCCESS = Gauge(
    "portal_job_last_success_timestamp_seconds", "When each job last finished ok.", ["job"]
)
LEDGER_DRIFT = Gauge(
    "portal_ledger_drift_findings", "Findings of the last ledger reconciliation (0 = no drift)."
)
