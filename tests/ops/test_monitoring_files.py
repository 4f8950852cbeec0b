"""Issue 26 part 2 ("Watched"): the metrics work with several processes, cover what on-call
needs, and the shipped alert rules and Grafana dashboard name only metrics the portal
exports. promtool (Debian's `prometheus` package) checks and unit-tests the rules; CI
installs it (.ci/run), elsewhere the promtool tests skip unless PORTAL_REQUIRE_SERVICES=1."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.test import override_settings
from django.urls import reverse

from tests.conftest import _missing

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "portal-dashboard.json"
METRIC = re.compile(r"\b(portal_[a-z0-9_]+)")
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _promtool():
    path = shutil.which("promtool")
    if not path:
        _missing("promtool (Debian package prometheus)")
    return path


def _exported_names():
    """Every sample name /ops/metrics/ can carry: the registered families and their
    counter/histogram sample names, the scrape-time ones read from the database."""
    from prometheus_client import REGISTRY

    from ops.metrics import registry

    names = set()
    for family in list(registry().collect()) + list(REGISTRY.collect()):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
        names.update(sample.name for sample in family.samples)
    return names


def _rule_exprs():
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs():
    doc = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in doc["panels"] for target in panel["targets"]]


def test_promtool_checks_the_rules():
    """The alert rules parse (promtool check rules)."""
    out = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_the_rules():
    """Settlement lag, a late job, an Alipay anomaly and drift fire; quiet series do not."""
    out = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_cover_what_the_issue_names():
    names = {
        rule["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for rule in g["rules"]
    }
    for needed in (
        "PortalSettlementLag",
        "PortalJobLate",
        "PortalAlipayAnomaly",
        "PortalLedgerDrift",
        "PortalDisputePastDeadline",
    ):
        assert needed in names


@pytest.mark.django_db
def test_rules_and_dashboard_name_only_exported_metrics():
    """Every metric an alert or a dashboard panel reads is one the portal exports."""
    exported = _exported_names()
    for expr in _rule_exprs() + _dashboard_exprs():
        used = METRIC.findall(expr)
        assert used, expr
        missing = [name for name in used if name not in exported]
        assert not missing, f"{expr}: {missing} not exported"


def test_dashboard_loads_with_unique_panels():
    doc = json.loads(DASHBOARD.read_text())
    assert doc["title"] and doc["uid"]
    ids = [panel["id"] for panel in doc["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 10
    for panel in doc["panels"]:
        assert panel["targets"], panel["title"]


@pytest.mark.django_db
def test_scrape_time_figures_cover_backlog_jobs_refunds_disputes(client):
    """The database's figures are read on each scrape (one process or many)."""
    body = client.get(reverse("ops:metrics")).content.decode()
    for name in (
        "portal_usage_pending_events",
        "portal_usage_pending_oldest_seconds",
        "portal_job_interval_seconds",
        "portal_disputes_past_deadline",
        "portal_disputes_debt_overdue",
        "portal_scrape_errors",
    ):
        assert name in body


@pytest.mark.django_db
def test_staff_alerts_counted_and_open_by_kind(client):
    from ops.services import raise_alert

    raise_alert("alipay_amount_mismatch", "test", key="t-1")
    body = client.get(reverse("ops:metrics")).content.decode()
    assert 'portal_staff_alerts_open{kind="alipay_amount_mismatch"} 1.0' in body
    assert 'portal_staff_alerts_raised_total{kind="alipay_amount_mismatch"}' in body


CHILD = """
import os, sys
from ops.metrics import GATEWAY_REQUESTS, JOB_RUNS
GATEWAY_REQUESTS.labels("authorize", "200").inc(int(sys.argv[1]))
JOB_RUNS.labels("settle_usage", "ok").inc()
"""


@pytest.mark.django_db
def test_multiprocess_mode_sums_every_process(client, tmp_path):
    """Two processes (web workers, Celery) count into PROMETHEUS_MULTIPROC_DIR; one scrape
    shows their sum, and the database's figures as well."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, cwd=ROOT, check=True)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    with override_settings(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)):
        body = client.get(reverse("ops:metrics")).content.decode()
    assert 'portal_gateway_requests_total{endpoint="authorize",status="200"} 5.0' in body
    assert 'portal_job_runs_total{job="settle_usage",status="ok"} 2.0' in body
    assert "portal_usage_pending_events" in body
