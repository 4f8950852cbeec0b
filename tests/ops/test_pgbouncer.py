"""Issue 26 part 5: the portal works behind PgBouncer in transaction pooling (README
"Operations: PgBouncer"). CI (.ci/run) starts one from ops/pgbouncer/pgbouncer.ini and sets
PGBOUNCER_URL (`postgres://postgres@127.0.0.1:6433/`); without it the test skips, unless
PORTAL_REQUIRE_SERVICES=1 (CI), where it is required."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.conftest import _missing

ROOT = Path(__file__).resolve().parents[2]


def _bouncer_stats(base, db):
    with psycopg.connect(base + "pgbouncer", autocommit=True, prepare_threshold=None) as conn:
        cur = conn.execute("SHOW STATS")
        cols = [c.name for c in cur.description]
        for row in cur.fetchall():
            row = dict(zip(cols, row, strict=False))
            if row["database"] == db:
                return row
    return None


def _release(base, db):
    with psycopg.connect(base + "pgbouncer", autocommit=True, prepare_threshold=None) as conn:
        conn.execute(f"KILL {db}")
        conn.execute(f"RESUME {db}")


@pytest.mark.django_db(transaction=True)
def test_gateway_usage_and_settlement_through_pgbouncer():
    """R-USE-5 behind a pooler: usage recorded through the gateway and settled, books
    reconciled, every statement through PgBouncer in transaction pooling."""
    base = os.environ.get("PGBOUNCER_URL", "")
    if not base:
        _missing("PgBouncer (PGBOUNCER_URL, started by .ci/run)")
    db = connection.settings_dict["NAME"]
    before = _bouncer_stats(base, db)
    connection.close()
    env = {
        **os.environ,
        "DATABASE_URL": base.rstrip("/") + "/" + db,
        "DB_DISABLE_SERVER_SIDE_CURSORS": "1",
        "DB_CONN_MAX_AGE": "60",
    }
    try:
        out = _smoke(env)
        after = _bouncer_stats(base, db)
    finally:
        _release(base, db)  # PgBouncer's idle server connections would block the test db's drop
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["answers"] == [200] * 6
    assert result["settled_events"] == 5 and result["findings"] == 0
    assert result["server_side_cursors_off"] is True
    assert after is not None
    done = after["total_xact_count"] - (before["total_xact_count"] if before else 0)
    assert done >= 10, after  # the child's transactions went through the pooler


def _smoke(env):
    return subprocess.run(
        [sys.executable, "-m", "tests.ops._pgbouncer_smoke", str(os.getpid() % 100000)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
