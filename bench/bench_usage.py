"""Metering over real HTTP (issue 14, "Benchmarks"): every figure from one run on one
database, next to `pgbench -N -c 8` on that database.

Phases, in order (each with the CPU share of every process group, bench/cpu.py):
  batch-zipf, batch-uniform  1,000-event batches over the 10,000 bench accounts
                             (Zipf s=1.1 and uniform), no settler running: what
                             ingestion alone can take;
  drain                      one `manage.py settle_usage` settles that backlog (the
                             settler's own speed, events/s);
  single, authorize          8 clients, one event / one authorize per request, with
                             one settler running as in production;
  lag-1, lag-2               batch ingestion flat out (Zipf) plus prepaid accounts that
                             run dry (a gateway that authorizes, then reports), with 1
                             and then 2 settler processes (`manage.py settle_usage
                             --seconds N`, started and connected before traffic, as a
                             running Celery settler would be): lag from an event's commit
                             (the client got `accepted`) to its settled_at, and the
                             pending count sampled every 0.5 s;
  lag-paced-R                the same at a steady R events/s (100-event batches; R =
                             BENCH_LAG_RATE, default half the drain rate): the lag when
                             settlement has the CPU to keep up;
  drain-1, drain-2           settlers that scale out (issue 25): a backlog built while
                             N running settlers are paused, then drained by them
                             (events/s, the 2/1 ratio, CPU µs and WAL bytes per event);
  sustain-Kx                 paced ingestion at K × pgbench tps, K stepped up
                             (BENCH_SUSTAIN_STEPS) with BENCH_SUSTAIN_SETTLERS (2)
                             settlers running, until lag p99 > 2 s or the backlog grows:
                             the highest rate that held;
then the books: reconcile (cache == ledger, postings sum to zero), every event settled
exactly once, settled usage == revenue and every part == its postings, to the micro.

This machine's PostgreSQL runs with autovacuum off (a CI setting): the bench VACUUMs
the tables settlement rewrites before each phase, as autovacuum would.

Env: BENCH_SECONDS (12), BENCH_LAG_SECONDS (20), BENCH_BATCH_CLIENTS (3), BENCH_SERVER
(sync | gthread | granian), BENCH_WORKERS, BENCH_THREADS, BENCH_SETTLERS ("1,2"),
BENCH_LAG_RATE, BENCH_DRAIN_SETTLERS ("1,2"), BENCH_DRAIN_INGEST_SECONDS (6),
BENCH_SUSTAIN_SETTLERS (2), BENCH_SUSTAIN_SECONDS (12), BENCH_SUSTAIN_STEPS,
BENCH_SETTINGS=lean (the lean-middleware experiment, bench/lean_settings.py),
BENCH_PHASES (comma list, to run a subset while tuning).
"""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter

from common import HOST, PORT, ROOT, WebServer, database_url, percentile, pgbench_tps
from cpu import CpuMeter, share_text
from seed import N_ACCOUNTS, create_accounts, raw_key, seed

SECONDS = float(os.environ.get("BENCH_SECONDS", "12"))
LAG_SECONDS = float(os.environ.get("BENCH_LAG_SECONDS", "20"))
CLIENTS = 8
BATCH = 1000
BATCH_CLIENTS = int(os.environ.get("BENCH_BATCH_CLIENTS", "3"))
# gunicorn gthread (keep-alive): 25-35 % less web CPU per single call than sync workers,
# which close the connection after every answer; granian measured about the same as
# gthread, so no extra dependency for it
SERVER = os.environ.get("BENCH_SERVER", "gthread")
WORKERS = int(os.environ.get("BENCH_WORKERS", "8" if SERVER == "sync" else "4"))
THREADS = int(os.environ.get("BENCH_THREADS", "1" if SERVER == "sync" else "4"))
SETTLERS = [int(x) for x in os.environ.get("BENCH_SETTLERS", "1,2").split(",") if x]
LAG_RATE = float(os.environ.get("BENCH_LAG_RATE", "0"))  # 0: half the settler's drain rate
PACED_BATCH = 100
LEAN = os.environ.get("BENCH_SETTINGS") == "lean"
SETTLER_NICE = int(os.environ.get("BENCH_SETTLER_NICE", "0"))  # experiment: e.g. -10
PHASES = set(filter(None, os.environ.get("BENCH_PHASES", "").split(",")))
TOKEN = "bench-gateway-token"
ZIPF_S = 1.1
DRY_ACCOUNTS = 10
DRY_CASH = "0.02"  # 5 events of DRY_AMOUNT, then the account is dry
DRY_AMOUNT = "0.004000"
DRY_AMOUNT_MICRO = 4000
DRY_CLIENTS = 2  # two gateway processes on the same accounts: in-flight events overlap
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
_ACCEPTED = re.compile(rb'"accepted":\s*(\d+)')
_ERRORS = re.compile(rb'"errors":\s*(\d+)')


def _want(phase):
    return not PHASES or phase in PHASES


# ---------------------------------------------------------------- the client side


class Http:
    """One HTTP/1.1 connection, reused while the server keeps it open (a gateway's pool)."""

    def __init__(self):
        self.conn = None

    def post(self, path, body: bytes):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
            try:
                self.conn.request("POST", path, body, HEADERS)
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue  # a kept-alive connection the server closed meanwhile
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, data
        raise AssertionError("unreachable")


def _zipf_picker(rnd):
    """k events → account indices, Zipf(s) over the accounts (rank order shuffled once,
    the same in every client, so the hot accounts are the same everywhere)."""
    order = list(range(N_ACCOUNTS))
    random.Random(42).shuffle(order)
    cum, acc = [], 0.0
    for rank in range(1, N_ACCOUNTS + 1):
        acc += rank**-ZIPF_S
        cum.append(acc)
    return lambda k: rnd.choices(order, cum_weights=cum, k=k)


def _batch_client(idx, cfg, deadline, out):
    rnd = random.Random(hash((cfg["tag"], idx)))
    if cfg["spread"] == "zipf":
        pick = _zipf_picker(rnd)
    else:
        pick = lambda k: [rnd.randrange(N_ACCOUNTS) for _ in range(k)]  # noqa: E731
    keys = [raw_key(i) for i in range(N_ACCOUNTS)]
    http_ = Http()
    events = errors = 0
    latencies, stamps = [], []
    size, pace = cfg.get("batch", BATCH), cfg.get("pace")  # pace: seconds between batches
    due = time.time() + (pace * idx / BATCH_CLIENTS if pace else 0)
    for n in itertools.count():
        if pace:
            time.sleep(max(0.0, due - time.time()))
            due += pace
        if time.time() >= deadline:
            break
        tag = f"{cfg['tag']}-{idx}-{n}"
        body = (
            '{"events":['
            + ",".join(
                f'{{"request_id":"{tag}.{j}","api_key":"{keys[a]}",'
                f'"model":"bench-model","amount":"0.000123"}}'
                for j, a in enumerate(pick(size))
            )
            + "]}"
        ).encode()
        t0 = time.perf_counter()
        status, data = http_.post("/api/v1/gateway/usage/batch", body)
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            errors += size
            continue
        head = data[:200]
        events += int(_ACCEPTED.search(head).group(1))
        errors += int(_ERRORS.search(head).group(1))
        stamps.append((tag, time.time()))
    out.update(events=events, errors=errors, latencies=latencies, stamps=stamps)


def _single_client(idx, cfg, deadline, out):
    rnd = random.Random(hash((cfg["tag"], idx)))
    http_ = Http()
    latencies, stamps, errors = [], [], 0
    for n in itertools.count():
        if time.time() >= deadline:
            break
        tag = f"{cfg['tag']}-{idx}-{n}"
        body = (
            f'{{"request_id":"{tag}.0","api_key":"{raw_key(rnd.randrange(N_ACCOUNTS))}",'
            f'"model":"bench-model","amount":"0.012345"}}'
        ).encode()
        t0 = time.perf_counter()
        status, data = http_.post("/api/v1/gateway/usage", body)
        latencies.append(time.perf_counter() - t0)
        if status != 200 or b'"accepted"' not in data:
            errors += 1
        else:
            stamps.append((tag, time.time()))
    out.update(events=len(stamps), errors=errors, latencies=latencies, stamps=stamps)


def _authorize_client(idx, cfg, deadline, out):
    rnd = random.Random(idx)
    bodies = [
        json.dumps({"api_key": raw_key(rnd.randrange(N_ACCOUNTS))}).encode() for _ in range(500)
    ]
    http_ = Http()
    latencies, errors = [], 0
    for body in itertools.cycle(bodies):
        if time.time() >= deadline:
            break
        t0 = time.perf_counter()
        status, data = http_.post("/api/v1/gateway/authorize", body)
        latencies.append(time.perf_counter() - t0)
        if status != 200 or b'"allowed": true' not in data and b'"allowed":true' not in data:
            errors += 1
    out.update(events=len(latencies) - errors, errors=errors, latencies=latencies, stamps=[])


def _balance_client(idx, cfg, deadline, out):
    """The user's own API (issue 27): GET /api/v1/me/balance with an account's API key."""
    rnd = random.Random(idx)
    keys = [raw_key(rnd.randrange(N_ACCOUNTS)) for _ in range(500)]
    conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
    latencies, errors = [], 0
    for raw in itertools.cycle(keys):
        if time.time() >= deadline:
            break
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/api/v1/me/balance", headers={"Authorization": f"Bearer {raw}"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
            errors += 1
            continue
        latencies.append(time.perf_counter() - t0)
        if resp.status != 200 or b'"is_available"' not in data:
            errors += 1
    out.update(events=len(latencies) - errors, errors=errors, latencies=latencies, stamps=[])


def _dry_client(idx, cfg, deadline, out):
    """A gateway serving prepaid accounts that run dry: authorize, then (if allowed)
    report the call; the other dry client does the same on the same accounts."""
    keys = cfg["dry_keys"]
    http_ = Http()
    reported = refused = errors = 0
    stamps = []
    auth = [json.dumps({"api_key": k}).encode() for k in keys]
    for n in itertools.count():
        if time.time() >= deadline:
            break
        k = (n + idx * 7) % len(keys)
        status, data = http_.post("/api/v1/gateway/authorize", auth[k])
        if b'"allowed": true' not in data and b'"allowed":true' not in data:
            refused += 1
            if refused % len(keys) == 0 and refused >= len(keys) * 3:
                time.sleep(0.01)  # every account dry: do not spin
            continue
        tag = f"{cfg['tag']}-d{idx}-{n}"
        body = (
            f'{{"request_id":"{tag}.0","api_key":"{keys[k]}",'
            f'"model":"bench-model","amount":"{DRY_AMOUNT}"}}'
        ).encode()
        status, data = http_.post("/api/v1/gateway/usage", body)
        if status == 200 and b'"accepted"' in data:
            reported += 1
            stamps.append((tag, time.time()))
        else:
            errors += 1
    out.update(events=reported, errors=errors, latencies=[], stamps=stamps, refused=refused)


def _client_main(target, idx, cfg, deadline, queue):
    out = {}
    try:
        target(idx, cfg, deadline, out)
    except Exception as exc:  # noqa: BLE001 - a failed client must not hang the run
        out = {"failed": repr(exc)}
    queue.put(out)


def _drive(meter, clients, seconds):
    """Start client processes [(target, idx, cfg)] with one deadline; returns their
    results and the elapsed wall time. Registers their pids with the CPU meter."""
    import django.db

    django.db.connections.close_all()  # no connection shared with forked children
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = time.time()
    deadline = start + seconds
    procs = [
        ctx.Process(target=_client_main, args=(target, idx, cfg, deadline, queue))
        for target, idx, cfg in clients
    ]
    for p in procs:
        p.start()
        meter.clients.add(p.pid)
    return procs, queue, start


def _collect(procs, queue, start, seconds):
    results = [queue.get(timeout=seconds + 180) for _ in procs]
    elapsed = time.time() - start
    for p in procs:
        p.join()
    failed = [r["failed"] for r in results if "failed" in r]
    if failed:
        raise RuntimeError(f"bench client failed: {failed[0]}")
    return results, elapsed


def _run_clients(meter, clients, seconds):
    procs, queue, start = _drive(meter, clients, seconds)
    return _collect(procs, queue, start, seconds)


# ---------------------------------------------------------------- settlers, lag, backlog


def _settler_env():
    env = dict(os.environ)
    env["DATABASE_URL"] = _with_app(database_url(), "bench-settler")
    env["DB_CONN_MAX_AGE"] = "600"
    return env


def _with_app(url, app):
    return f"{url}{'&' if '?' in url else '?'}application_name={app}"


def start_settler(meter, seconds):
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "settle_usage", "--seconds", str(seconds)],
        cwd=ROOT,
        env=_settler_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    meter.settlers.add(proc.pid)
    return proc


def ready_settlers(procs, timeout=90):
    """Wait until every settler has connected (its Django start-up can take seconds on a
    busy machine): a production settler is already running when traffic arrives."""
    from django.db import connection

    deadline = time.time() + timeout
    while time.time() < deadline:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'bench-settler'"
            )
            if cur.fetchone()[0] >= len(procs):
                if SETTLER_NICE:
                    _renice_settlers(procs)
                return
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a settler exited during start-up")
        time.sleep(0.1)
    raise RuntimeError("settlers did not start")


def _renice_settlers(procs):
    """The experiment BENCH_SETTLER_NICE=-N: settlers and their PostgreSQL backends get
    scheduling priority over the web server (what a deployment can do with reserved
    cores or priorities), so flat-out ingestion yields CPU to settlement."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'bench-settler'")
        backends = [row[0] for row in cur.fetchall()]
    for pid in [p.pid for p in procs] + backends:
        os.setpriority(os.PRIO_PROCESS, pid, SETTLER_NICE)


def drain_then_stop(procs, timeout=900):
    """Wait until nothing is pending, then stop the settlers (a settler stopped while
    idle leaves nothing behind; one killed midway would roll back its chunk). Returns
    the seconds it took to drain."""
    t0 = time.time()
    while pending_count() and time.time() - t0 < timeout:
        time.sleep(0.1)
    took = time.time() - t0
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
    return took


def wait_settlers(procs, timeout=900):
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"settler failed ({p.returncode}): {out[-2000:]}")
        outs.append(out.strip().splitlines()[-1] if out.strip() else "")
    return outs


def pending_count():
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM billing_usageevent WHERE transaction_id IS NULL")
        return cur.fetchone()[0]


def sample_waits(counter):
    """Count what the settlers' and web workers' backends are doing right now (state, or
    the wait event when they wait): where a phase's time goes inside PostgreSQL."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT application_name, CASE WHEN state = 'active' THEN"
            " COALESCE(wait_event_type || ':' || wait_event, 'on CPU') ELSE state END"
            " FROM pg_stat_activity WHERE application_name IN ('bench-settler', 'bench-web')"
        )
        for app, what in cur.fetchall():
            counter[(app, what)] += 1


def wait_text(counter, app, top=4):
    """'on CPU 40% idle 30% LWLock:WALWrite 20% …' for one application's backends."""
    mine = {k[1]: v for k, v in counter.items() if k[0] == app}
    total = sum(mine.values()) or 1
    best = sorted(mine.items(), key=lambda kv: -kv[1])[:top]
    return " ".join(f"{what} {n * 100 // total}%" for what, n in best)


def lag_stats(stamps, prefix):
    """p50/p99 seconds from each event's commit (its batch's `accepted` at the client)
    to its settled_at, over every event whose request id starts with `prefix`, and how
    many of them are still pending."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS bench_accepted (tag text, t float8)")
        cur.execute("TRUNCATE bench_accepted")
        with cur.copy("COPY bench_accepted (tag, t) FROM STDIN") as copy:
            for row in stamps:
                copy.write_row(row)
        cur.execute("CREATE INDEX IF NOT EXISTS bench_accepted_tag ON bench_accepted (tag)")
        cur.execute("ANALYZE bench_accepted")
        cur.execute(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                   max(lag), count(*), count(*) FILTER (WHERE lag IS NULL)
              FROM (SELECT extract(epoch FROM c.settled_at) - a.t AS lag
                      FROM billing_usageevent c
                      JOIN bench_accepted a ON a.tag = split_part(c.request_id, '.', 1)
                     WHERE c.request_id LIKE %s) x
            """,
            [prefix + "%"],
        )
        p50, p99, worst, n, unsettled = cur.fetchone()
    return p50, p99, worst, n, unsettled


def backlog_trend(samples):
    """(first, max, last, slope events/s by least squares) of [(t, pending)]."""
    if len(samples) < 2:
        return 0, 0, 0, 0.0
    ts = [t for t, _ in samples]
    ys = [y for _, y in samples]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts) or 1.0
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var
    return ys[0], max(ys), ys[-1], slope


# ---------------------------------------------------------------- the books


def drift_rows():
    from django.db import connection

    from billing.services.reconcile import reconcile_all

    t0 = time.perf_counter()
    report = reconcile_all()
    took = time.perf_counter() - t0
    q = {}
    with connection.cursor() as cur:

        def one(name, sql):
            cur.execute(sql)
            q[name] = cur.fetchone()

        one("pending", "SELECT COUNT(*) FROM billing_usageevent WHERE transaction_id IS NULL")
        one(
            "dup",
            "SELECT COUNT(*) FROM (SELECT request_id FROM billing_usageevent GROUP BY request_id"
            " HAVING COUNT(*) > 1) d",
        )
        # a settled event's transaction exists, is a usage transaction of its account
        one(
            "orphans",
            "SELECT COUNT(*) FROM billing_usageevent c LEFT JOIN billing_ledgertransaction t"
            " ON t.id = c.transaction_id WHERE c.transaction_id IS NOT NULL"
            " AND (t.id IS NULL OR t.kind <> 'usage' OR t.account_id <> c.account_id"
            " OR c.settled_at IS NULL)",
        )
        # each event's parts cover exactly its amount
        one(
            "parts",
            "SELECT COUNT(*) FROM billing_usageevent WHERE transaction_id IS NOT NULL AND"
            " trial_micro + discount_micro + cash_micro + arrears_micro <> amount_micro",
        )
        # per usage transaction: its events' amounts == its revenue, and each part ==
        # what its postings took from that bucket (an event settled twice, or skipped,
        # breaks one of these)
        one(
            "txn_mismatch",
            """
            WITH ev AS (
                SELECT transaction_id AS id, SUM(amount_micro) a, SUM(trial_micro) tr,
                       SUM(discount_micro) di, SUM(cash_micro) ca, SUM(arrears_micro) ar
                  FROM billing_usageevent WHERE transaction_id IS NOT NULL GROUP BY 1),
            po AS (
                SELECT p.transaction_id AS id,
                       SUM(p.amount_micro) FILTER (WHERE p.bucket = 'revenue') a,
                       -SUM(p.amount_micro) FILTER (WHERE p.bucket = 'trial') tr,
                       -SUM(p.amount_micro) FILTER (WHERE p.bucket = 'discount') di,
                       -SUM(p.amount_micro) FILTER (WHERE p.bucket = 'cash') ca,
                       -SUM(p.amount_micro) FILTER (WHERE p.bucket = 'arrears') ar
                  FROM billing_posting p JOIN billing_ledgertransaction t
                    ON t.id = p.transaction_id AND t.kind = 'usage' GROUP BY 1)
            SELECT COUNT(*) FROM ev FULL JOIN po USING (id)
             WHERE ev.a IS DISTINCT FROM po.a
                OR ev.tr <> COALESCE(po.tr, 0) OR ev.di <> COALESCE(po.di, 0)
                OR ev.ca <> COALESCE(po.ca, 0) OR ev.ar <> COALESCE(po.ar, 0)
            """,
        )
        one(
            "totals",
            """
            SELECT (SELECT COALESCE(SUM(amount_micro), 0) FROM billing_usageevent
                     WHERE transaction_id IS NOT NULL),
                   (SELECT COALESCE(SUM(p.amount_micro), 0) FROM billing_posting p
                      JOIN billing_ledgertransaction t ON t.id = p.transaction_id
                     WHERE t.kind = 'usage' AND p.bucket = 'revenue'),
                   (SELECT COALESCE(SUM(arrears_micro), 0) FROM billing_usageevent),
                   (SELECT COALESCE(-SUM(p.amount_micro), 0) FROM billing_posting p
                      JOIN billing_ledgertransaction t ON t.id = p.transaction_id
                     WHERE t.kind = 'usage' AND p.bucket = 'arrears'),
                   (SELECT COUNT(*) FROM billing_usageevent),
                   (SELECT COUNT(*) FROM billing_posting)
            """,
        )
    settled, revenue, arrears_ev, arrears_po, events, postings = q["totals"]
    return [
        ("cache == ledger (reconcile findings)", len(report.drifts), "0", not report.drifts),
        (
            "sum of all postings (micro)",
            report.postings_total_micro,
            "0",
            report.postings_total_micro == 0,
        ),
        ("pending after draining", q["pending"][0], "0", q["pending"][0] == 0),
        ("request ids seen twice", q["dup"][0], "0", q["dup"][0] == 0),
        ("settled events without their txn", q["orphans"][0], "0", q["orphans"][0] == 0),
        ("events whose parts != amount", q["parts"][0], "0", q["parts"][0] == 0),
        ("usage txns: events != postings", q["txn_mismatch"][0], "0", q["txn_mismatch"][0] == 0),
        ("settled usage - revenue (micro)", settled - revenue, "0", settled == revenue),
        (
            "arrears parts - arrears postings",
            arrears_ev - arrears_po,
            "0",
            arrears_ev == arrears_po,
        ),
        ("books checked", f"{events} events {postings} postings {took:.0f}s", "", None),
    ]


# ------------------------------------------------------- settlers that scale out (issue 25)

SCALE_SETTLERS = [int(x) for x in os.environ.get("BENCH_DRAIN_SETTLERS", "1,2").split(",") if x]
DRAIN_INGEST_SECONDS = float(os.environ.get("BENCH_DRAIN_INGEST_SECONDS", "6"))
SUSTAIN_SETTLERS = int(os.environ.get("BENCH_SUSTAIN_SETTLERS", "2"))
SUSTAIN_SECONDS = float(os.environ.get("BENCH_SUSTAIN_SECONDS", "12"))
# the paced rates tried, as multiples of pgbench's tps, lowest first (the first that does
# not hold ends the search)
SUSTAIN_STEPS = [
    float(x) for x in os.environ.get("BENCH_SUSTAIN_STEPS", "1,1.5,2,2.5,3,3.5,4").split(",") if x
]


def slot_holders():
    """How many slots each settler's session holds: [count per settler]."""
    from django.db import connection

    from billing.services.settlement import SLOT_LOCK

    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " AND d.datname = current_database() WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.classid = %s::oid AND l.objsubid = 2 GROUP BY l.pid",
            [SLOT_LOCK],
        )
        return [row[0] for row in cur.fetchall()]


def shared_slots(n, timeout=30):
    """Wait until n running settlers hold an even share of the slots each."""
    from billing.services.settlement import settler_slots

    share = -(-settler_slots() // n)
    deadline = time.time() + timeout
    while time.time() < deadline:
        held = slot_holders()
        if len(held) == n and sum(held) == settler_slots() and max(held) <= share:
            return
        time.sleep(0.1)
    raise RuntimeError(f"settlers did not share the slots: {slot_holders()}")


def wal_lsn():
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()::text")
        return cur.fetchone()[0]


def wal_bytes(start, end):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", [end, start])
        return float(cur.fetchone()[0])


def _cpu_us_per_event(meter, name, groups, events):
    used = meter.results[name]["groups"]
    return sum(used.get(g, 0.0) for g in groups) / max(1, events) * 1e6


def settler_scaling(meter, row, run_id):
    """drain-N: a backlog (Zipf batches flat out for BENCH_DRAIN_INGEST_SECONDS) built
    while N running settlers are paused (SIGSTOP: started, connected and holding their
    share of the slots, as running Celery settlers would be), then resumed together: the
    events/s until nothing is pending, and the settlers' CPU (theirs and their backends')
    per event. Returns [(phase, cpu shares)]."""
    import signal

    import django.db

    cpu, rates = [], {}
    for n in SCALE_SETTLERS:
        name = f"drain-{n}"
        if not _want("drain-n"):
            continue
        settlers = [start_settler(meter, 3600) for _ in range(n)]
        ready_settlers(settlers)
        shared_slots(n)
        for p in settlers:
            p.send_signal(signal.SIGSTOP)
        cfg = {"tag": f"D{n}-{run_id}", "spread": "zipf"}
        wal0, before = wal_lsn(), pending_count()
        _run_clients(
            meter, [(_batch_client, i, cfg) for i in range(BATCH_CLIENTS)], DRAIN_INGEST_SECONDS
        )
        backlog = pending_count()
        wal1 = wal_lsn()
        vacuum()
        wal2 = wal_lsn()
        django.db.connections.close_all()
        meter.phase(name)
        t0 = time.time()
        for p in settlers:
            p.send_signal(signal.SIGCONT)
        while pending_count() and time.time() - t0 < 900:
            time.sleep(0.05)
        took = time.time() - t0
        meter.stop()
        wal3 = wal_lsn()
        drain_then_stop(settlers)
        wal_in = wal_bytes(wal0, wal1) / max(1, backlog - before)
        wal_settle = wal_bytes(wal2, wal3) / max(1, backlog)
        row(
            f"{name}: WAL bytes per event, ingestion / settlement",
            f"{wal_in:.0f} / {wal_settle:.0f}",
            key=f"{name}_wal_bytes_per_event",
            raw=[round(wal_in), round(wal_settle)],
        )
        rates[n] = rate = backlog / took if took else 0.0
        per_event = _cpu_us_per_event(meter, name, ("settler", "pg:settler"), backlog)
        print(
            f"{name}: {backlog} events in {took:.1f}s = {rate:.0f}/s"
            f" cpu {share_text(meter.share(name))}",
            flush=True,
        )
        row(
            f"{name}: settler drain events/s ({n} settler{'s' if n > 1 else ''}, {backlog} events)",
            f"{rate:.0f}",
            key=f"{name}_events_per_s",
            raw=round(rate),
        )
        row(
            f"{name}: settler CPU µs per event (settlers + their backends)",
            f"{per_event:.0f}",
            key=f"{name}_cpu_us_per_event",
            raw=round(per_event, 1),
        )
        cpu.append((name, meter.share(name)))
    if 1 in rates and len(rates) > 1:
        n = max(rates)
        ratio = rates[n] / rates[1] if rates[1] else 0.0
        row(
            f"drain: {n} settlers / 1 settler",
            f"{ratio:.2f}×",
            ">= 1.7" if n == 2 else "",
            ratio >= 1.7 if n == 2 else None,
            key="drain_scaling",
            raw=round(ratio, 3),
        )
    return cpu


def sustainable_rate(meter, row, tps, run_id):
    """sustain: with SUSTAIN_SETTLERS settlers running on the same machine, paced batch
    ingestion (Zipf) at rates stepped up by multiples of pgbench's tps
    (BENCH_SUSTAIN_STEPS), SUSTAIN_SECONDS each, the backlog drained between steps. A
    step holds when the paced rate was reached (≥ 90 %), lag p99 ≤ 2 s and the backlog
    stayed flat (what is pending at the end ≤ 2 s of traffic). The row: the highest rate
    that held, as a ratio to pgbench. Returns [(phase, cpu shares)]."""
    import django.db

    if not _want("sustain"):
        return []
    settlers = [start_settler(meter, 3600) for _ in range(SUSTAIN_SETTLERS)]
    ready_settlers(settlers)
    shared_slots(SUSTAIN_SETTLERS)
    best, cpu, tried = None, [], []
    try:
        for step in SUSTAIN_STEPS:
            target = step * tps
            # a gateway flushing about every 50 ms: batches grow with the rate
            size = max(PACED_BATCH, int(round(target / BATCH_CLIENTS / 20, -2)))
            cfg = {
                "tag": f"S{round(step * 100)}-{run_id}",
                "spread": "zipf",
                "batch": size,
                "pace": size * BATCH_CLIENTS / target,
            }
            vacuum()
            django.db.connections.close_all()
            name = f"sustain-{step:g}x"
            meter.phase(name)
            procs, queue, start = _drive(
                meter, [(_batch_client, i, cfg) for i in range(BATCH_CLIENTS)], SUSTAIN_SECONDS
            )
            samples = []
            while time.time() < start + SUSTAIN_SECONDS:
                samples.append((time.time() - start, pending_count()))
                time.sleep(0.5)
            django.db.connections.close_all()
            results, elapsed = _collect(procs, queue, start, SUSTAIN_SECONDS)
            meter.stop()
            t_tail = time.time()
            while pending_count() and time.time() - t_tail < 300:
                time.sleep(0.1)
            events = sum(r["events"] for r in results)
            rate = events / elapsed
            stamps = [s for r in results for s in r["stamps"]]
            _p50, p99, _worst, _n, _unsettled = lag_stats(stamps, cfg["tag"] + "-")
            first, peak, last, slope = backlog_trend(samples)
            held = rate >= 0.9 * target and p99 <= 2 and last <= rate * 2
            ingest_us = _cpu_us_per_event(meter, name, ("web", "pg:web"), events)
            settle_us = _cpu_us_per_event(meter, name, ("settler", "pg:settler"), events)
            print(
                f"{name}: target {target:.0f} got {rate:.0f} ev/s p99 {p99:.2f}s "
                f"backlog {first}->{last} slope {slope:.0f}/s {'held' if held else 'did not hold'}",
                flush=True,
            )
            tried.append(
                {
                    "step": step,
                    "target": round(target),
                    "rate": round(rate),
                    "lag_p99_s": round(p99, 3),
                    "pending_last": last,
                    "slope": round(slope),
                    "held": held,
                    "ingest_cpu_us": round(ingest_us, 1),
                    "settle_cpu_us": round(settle_us, 1),
                }
            )
            cpu.append((name, meter.share(name)))
            if not held:
                break
            best = tried[-1]
    finally:
        drain_then_stop(settlers)
    for t in tried:
        row(
            f"sustain {t['step']:g}× pgbench ({t['target']}/s, {SUSTAIN_SETTLERS} settlers):"
            " got ev/s, lag p99 s, pending at end",
            f"{t['rate']} / {t['lag_p99_s']:.2f} / {t['pending_last']}"
            + ("" if t["held"] else " (did not hold)"),
            raw=t,
        )
    rate = best["rate"] if best else 0
    row(
        f"sustainable metered rate (paced, {SUSTAIN_SETTLERS} settlers on the machine)",
        f"{rate} events/s = {rate / tps:.2f}× pgbench",
        ">= 2.5×",
        rate / tps >= 2.5,
        key="sustainable_ratio",
        raw=round(rate / tps, 3),
    )
    if best:
        row(
            "sustainable rate: CPU µs per event, ingestion (web + backends) / settlement",
            f"{best['ingest_cpu_us']:.0f} / {best['settle_cpu_us']:.0f}",
            key="sustain_cpu_us_per_event",
            raw=[best["ingest_cpu_us"], best["settle_cpu_us"]],
        )
    return cpu


# ---------------------------------------------------------------- the run

# The tables settlement rewrites: what autovacuum would keep clean in production.
_CHURNED = (
    "billing_usageevent",
    "billing_ledgeraccount",
    "billing_lot",
    "billing_grant",
    "accounts_apikey",
    "accounts_balanceaccount",
)


def autovacuum_on() -> bool:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SHOW autovacuum")
        return cur.fetchone()[0] == "on"


def vacuum():
    """VACUUM (ANALYZE) the tables settlement rewrites, between phases: this machine's
    PostgreSQL runs with autovacuum off (a CI setting), and without it every phase would
    pay for the dead rows of all phases before it."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"VACUUM (ANALYZE) {', '.join(_CHURNED)}")


def _pg_apps_reader():
    """{backend pid: application_name}, on its own connection (the CPU meter's thread)."""
    import psycopg

    conn = None

    def read():
        nonlocal conn
        if conn is None:
            conn = psycopg.connect(_with_app(database_url(), "bench-meter"), autocommit=True)
        return dict(conn.execute("SELECT pid, application_name FROM pg_stat_activity").fetchall())

    return read


def authorize_limits_phase(row, *, keys=200, rounds=5):
    """`authorize` with spend limits set vs without (issue 23, R-USE-7: within 10 %):
    in-process calls of billing.services.authorization.authorize on `keys` bench keys,
    alternating the two cases `rounds` times (best round of each), so the HTTP stack
    and the other phases do not blur a difference of a few microseconds."""
    from billing.models import SpendLimit
    from billing.services.authorization import authorize, resolve_api_keys
    from billing.services.limits import period_start

    raws = [raw_key(i) for i in range(keys)]
    refs = list(resolve_api_keys(raws).values())
    accounts = sorted({r.account_id for r in refs})

    def timed():
        t0 = time.perf_counter()
        for ref in refs:
            authorize(ref, "glm-4")
        return (time.perf_counter() - t0) / len(refs) * 1e6

    SpendLimit.objects.filter(account_id__in=accounts).delete()
    timed()  # warm
    without, with_ = [], []
    for _ in range(rounds):
        without.append(timed())
        SpendLimit.objects.bulk_create(
            [
                SpendLimit(
                    account_id=ref.account_id,
                    api_key_id=key_id,
                    period=period,
                    limit_micro=10**12,
                    hard=True,
                    period_start=period_start(period),
                )
                for ref in refs
                for key_id in (None, ref.pk)
                for period in ("month", "day")
            ],
            ignore_conflicts=True,
        )
        with_.append(timed())
        SpendLimit.objects.filter(account_id__in=accounts).delete()
    a, b = min(without), min(with_)
    extra = (b - a) / a * 100
    print(f"authorize: {a:.0f} µs without limits, {b:.0f} µs with 4 limits", flush=True)
    row(
        "authorize with spend limits (4 per key) vs without, in-process",
        f"{b:.0f} µs vs {a:.0f} µs ({extra:+.1f} %)",
        target="≤ +10 %",
        ok=extra <= 10,
        key="authorize_limits_extra_pct",
        raw=round(extra, 1),
    )


def _seed_dry():
    """Fresh prepaid accounts with DRY_CASH each (new ones per phase)."""
    run_id = uuid.uuid4().hex[:9]  # the key prefix holds at most 16 characters
    specs = [
        (f"dry-{run_id}-{i}@bench-dry.local", f"sk-dry-{run_id}-{i:03d}", f"sk-d{run_id}{i:03d}")
        for i in range(DRY_ACCOUNTS)
    ]
    ids = create_accounts(specs, DRY_CASH)
    return ids, [k for _, k, _ in specs]


def run():
    import django.db

    rows = []

    def row(metric, value, target="", ok=None, key=None, raw=None):
        """One table row; `raw` is the figure the JSON line carries (default: value)."""
        out = {"bench": "usage", "metric": metric, "value": value, "target": target, "ok": ok}
        if raw is not None:
            out["raw"] = raw
        rows.append(out)

    os.environ["GATEWAY_SERVICE_TOKEN"] = TOKEN
    t0 = time.time()
    created = seed()
    run_id = uuid.uuid4().hex[:8]
    dry_ids = []
    print(f"seeded {created} new accounts in {time.time() - t0:.1f}s", flush=True)
    django.db.connections.close_all()
    tps = pgbench_tps(seconds=int(os.environ.get("BENCH_PGBENCH_SECONDS", "12")))
    print(f"pgbench -N -c 8: {tps:.0f} tps", flush=True)
    row("pgbench -N -c 8 tps", f"{tps:.0f}", key="pgbench_tps", raw=round(tps))
    if _want("authorize-limits"):
        authorize_limits_phase(row)
        django.db.connections.close_all()
    meter = CpuMeter(pg_apps=_pg_apps_reader())
    server = WebServer(
        SERVER,
        workers=WORKERS,
        threads=THREADS,
        extra_env={
            "GATEWAY_SERVICE_TOKEN": TOKEN,
            "DATABASE_URL": _with_app(database_url(), "bench-web"),
            # the balance phase is 8 clients on 4,000 keys: the per-key limit stays on
            # (its cache round trip is part of the cost) but is never reached
            "ME_API_RATE_PER_MINUTE": "1000000",
            # the lean-middleware experiment (bench/lean_settings.py)
            **(
                {
                    "DJANGO_SETTINGS_MODULE": "lean_settings",
                    "PYTHONPATH": str(ROOT / "bench") + os.pathsep + str(ROOT),
                }
                if LEAN
                else {}
            ),
        },
    )
    row("server", server.label() + (" (lean middleware)" if LEAN else ""), key="server")
    lean_path = os.environ.get("GATEWAY_LEAN_PATH", "1").lower() not in {"0", "off", "false", "no"}
    row(
        "API path",
        "lean (billing/lean.py)" if lean_path else "full middleware stack",
        raw=lean_path,
    )
    av = autovacuum_on()
    row("autovacuum", "on" if av else "off: VACUUM between phases", raw=av)
    if SETTLER_NICE:
        row("settler priority (nice)", SETTLER_NICE, raw=SETTLER_NICE)
    cpu_rows = []

    def phase_cpu(name):
        cpu_rows.append((name, meter.share(name)))

    try:
        with server:
            meter.web_master = server.pid
            warm = {"tag": f"w-{run_id}", "spread": "uniform"}
            _run_clients(meter, [(_single_client, i, warm) for i in range(CLIENTS)], 3)
            _run_clients(meter, [(_authorize_client, i, warm) for i in range(CLIENTS)], 2)
            _run_clients(meter, [(_batch_client, i, warm) for i in range(BATCH_CLIENTS)], 2)
            import subprocess as _sp

            _sp.run(
                [sys.executable, "manage.py", "settle_usage"],
                cwd=ROOT,
                env=_settler_env(),
                check=True,
                capture_output=True,
            )

            for spread in ("zipf", "uniform"):
                name = f"batch-{spread}"
                if not _want(name):
                    continue
                cfg = {"tag": f"B{spread[0]}-{run_id}", "spread": spread}
                vacuum()
                meter.phase(name)
                results, elapsed = _run_clients(
                    meter, [(_batch_client, i, cfg) for i in range(BATCH_CLIENTS)], SECONDS
                )
                meter.stop()
                events = sum(r["events"] for r in results)
                errors = sum(r["errors"] for r in results)
                lat = [x for r in results for x in r["latencies"]]
                rate = events / elapsed
                print(f"{name}: {rate:.0f} events/s", flush=True)
                row(
                    f"{name}: events/s ({BATCH_CLIENTS} clients)",
                    f"{rate:.0f}",
                    key=f"{name}_events_per_s",
                    raw=round(rate),
                )
                row(
                    f"{name}: ratio to pgbench",
                    f"{rate / tps:.1f}",
                    ">= 10",
                    rate / tps >= 10,
                    key=f"{name}_ratio",
                    raw=round(rate / tps, 2),
                )
                row(
                    f"{name}: p50/p99 ms per batch",
                    f"{percentile(lat, 50) * 1000:.0f} / {percentile(lat, 99) * 1000:.0f}",
                )
                row(f"{name}: errors", errors, "0", errors == 0, key=f"{name}_errors")
                phase_cpu(name)

            drain_rate = 0
            if not _want("drain") and pending_count():
                wait_settlers([start_settler(meter, 0)])  # no backlog into the next phases
            if _want("drain"):
                backlog = pending_count()
                django.db.connections.close_all()
                meter.phase("drain")
                t1 = time.time()
                (out,) = wait_settlers([start_settler(meter, 0)])
                took = time.time() - t1
                meter.stop()
                rate = drain_rate = backlog / took if took else 0
                print(f"drain: {backlog} events in {took:.1f}s ({out})", flush=True)
                row(
                    "settler alone: events/s (drain)",
                    f"{rate:.0f}",
                    key="settler_drain_events_per_s",
                    raw=round(rate),
                )
                phase_cpu("drain")

            answer_rates = {}
            for name, target_fn, ratio_target, p99_target in (
                ("single", _single_client, 0.3, 0.020),
                ("authorize", _authorize_client, 0.5, 0.010),
                # issue 27: the user's GET /api/v1/me/balance, same 8 clients (h10)
                ("balance", _balance_client, 0.4, 0.012),
            ):
                if not _want(name):
                    continue
                cfg = {"tag": f"{name[0].upper()}-{run_id}", "spread": "uniform"}
                vacuum()
                settler = start_settler(meter, 3600)
                ready_settlers([settler])
                meter.phase(name)
                results, elapsed = _run_clients(
                    meter, [(target_fn, i, cfg) for i in range(CLIENTS)], SECONDS
                )
                meter.stop()
                drain_then_stop([settler])
                lat = [x for r in results for x in r["latencies"]]
                errors = sum(r["errors"] for r in results)
                rate = sum(r["events"] for r in results) / elapsed
                answer_rates[name] = rate
                p50, p99 = percentile(lat, 50), percentile(lat, 99)
                unit = "events/s" if name == "single" else "answers/s"
                print(f"{name}: {rate:.0f} {unit} p99 {p99 * 1000:.1f} ms", flush=True)
                row(
                    f"{name}: {unit} (8 clients)",
                    f"{rate:.0f}",
                    key=f"{name}_per_s",
                    raw=round(rate),
                )
                row(
                    f"{name}: ratio to pgbench",
                    f"{rate / tps:.2f}",
                    f">= {ratio_target}",
                    rate / tps >= ratio_target,
                    key=f"{name}_ratio",
                    raw=round(rate / tps, 3),
                )
                row(
                    f"{name}: p50 ms",
                    f"{p50 * 1000:.1f}",
                    key=f"{name}_p50_ms",
                    raw=round(p50 * 1000, 2),
                )
                row(
                    f"{name}: p99 ms",
                    f"{p99 * 1000:.1f}",
                    f"<= {p99_target * 1000:.0f}",
                    p99 <= p99_target,
                    key=f"{name}_p99_ms",
                    raw=round(p99 * 1000, 2),
                )
                row(f"{name}: errors", errors, "0", errors == 0, key=f"{name}_errors")
                if name == "single":
                    stamps = [s for r in results for s in r["stamps"]]
                    s50, s99, _, _, _ = lag_stats(stamps, cfg["tag"] + "-")
                    row(
                        "single: settlement lag p50/p99 s",
                        f"{s50:.2f} / {s99:.2f}",
                        key="single_lag_p99_s",
                        raw=round(s99, 3),
                    )
                phase_cpu(name)

            if {"balance", "authorize"} <= answer_rates.keys():  # issue 27: within 20 %
                share = answer_rates["balance"] / answer_rates["authorize"]
                row(
                    "balance: ratio to authorize",
                    f"{share:.2f}",
                    ">= 0.8",
                    share >= 0.8,
                    key="balance_to_authorize",
                    raw=round(share, 3),
                )

            lag_phases = [(f"lag-{n}", n, None) for n in SETTLERS]
            rate = LAG_RATE or (round(drain_rate * 0.5, -2) if drain_rate else 2000)
            lag_phases.append((f"lag-paced-{int(rate)}", 1, rate))
            for name, n, paced in lag_phases:
                if not _want(name.rsplit("-", 1)[0] if paced else name):
                    continue
                ids, dry_keys = _seed_dry()  # fresh prepaid accounts
                dry_ids += ids
                cfg = {"tag": f"L{len(dry_ids)}-{run_id}", "spread": "zipf", "dry_keys": dry_keys}
                if paced:  # 100-event batches at `paced` events/s over the batch clients
                    cfg.update(batch=PACED_BATCH, pace=PACED_BATCH * BATCH_CLIENTS / paced)
                vacuum()
                settlers = [start_settler(meter, 3600) for _ in range(n)]
                ready_settlers(settlers)
                django.db.connections.close_all()
                meter.phase(name)
                procs, queue, start = _drive(
                    meter,
                    [(_batch_client, i, cfg) for i in range(BATCH_CLIENTS)]
                    + [(_dry_client, i, cfg) for i in range(DRY_CLIENTS)],
                    LAG_SECONDS,
                )
                samples, waits, next_count = [], Counter(), 0.0
                while time.time() < start + LAG_SECONDS:
                    if time.time() >= next_count:
                        samples.append((time.time() - start, pending_count()))
                        next_count = time.time() + 0.5
                    sample_waits(waits)
                    time.sleep(0.1)
                django.db.connections.close_all()
                results, elapsed = _collect(procs, queue, start, LAG_SECONDS)
                meter.phase(f"{name}-tail")
                tail = drain_then_stop(settlers)
                meter.stop()
                events = sum(r["events"] for r in results)
                rate = events / elapsed
                stamps = [s for r in results for s in r["stamps"]]
                p50, p99, worst, counted, unsettled = lag_stats(stamps, cfg["tag"] + "-")
                first, peak, last, slope = backlog_trend(samples)
                keeps_up = last <= rate * 2
                print(
                    f"{name}: {rate:.0f} ev/s lag p50 {p50:.2f} p99 {p99:.2f} "
                    f"backlog {first}->{last} slope {slope:.0f}/s tail {tail:.1f}s",
                    flush=True,
                )
                how = f"paced, {PACED_BATCH}/batch" if paced else "flat out"
                row(
                    f"{name}: ingestion events/s ({how}, {n} settler{'s' if n > 1 else ''})",
                    f"{rate:.0f}",
                    key=f"{name}_ingest_events_per_s",
                    raw=round(rate),
                )
                row(f"{name}: lag p50 s", f"{p50:.2f}", key=f"{name}_lag_p50_s", raw=round(p50, 3))
                row(
                    f"{name}: lag p99 s",
                    f"{p99:.2f}",
                    "<= 2",
                    p99 <= 2,
                    key=f"{name}_lag_p99_s",
                    raw=round(p99, 3),
                )
                row(
                    f"{name}: lag max s",
                    f"{worst:.2f}",
                    key=f"{name}_lag_max_s",
                    raw=round(worst, 3),
                )
                row(
                    f"{name}: pending first/max/last",
                    f"{first}/{peak}/{last}",
                    key=f"{name}_pending",
                    raw=[first, peak, last],
                )
                row(
                    f"{name}: backlog growth ev/s",
                    f"{slope:.0f}",
                    "keeps up",
                    keeps_up,
                    key=f"{name}_backlog_slope",
                    raw=round(slope),
                )
                settled_rate = max(0.0, rate - slope)
                row(
                    f"{name}: settled during ingestion ev/s",
                    f"{settled_rate:.0f}",
                    raw=round(settled_rate),
                )
                row(
                    f"{name}: drain after ingestion s",
                    f"{tail:.1f}",
                    key=f"{name}_tail_s",
                    raw=round(tail, 1),
                )
                if unsettled:
                    row(f"{name}: events not settled", unsettled, "0", False)
                for app in ("bench-settler", "bench-web"):
                    row(
                        f"{name}: {app[6:]} backends' states",
                        wait_text(waits, app),
                        raw={k[1]: v for k, v in waits.items() if k[0] == app},
                    )
                refused = sum(r.get("refused", 0) for r in results)
                reported = sum(r["events"] for r in results if "refused" in r)
                row(
                    f"{name}: dry accounts: calls reported/refused",
                    f"{reported}/{refused}",
                    raw=[reported, refused],
                )
                phase_cpu(name)
            cpu_rows += settler_scaling(meter, row, run_id)
            cpu_rows += sustainable_rate(meter, row, tps, run_id)
    finally:
        meter.close()

    from django.db import connection

    wait_settlers([start_settler(meter, 0)])  # whatever is left, before the books
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(MAX(-balance_micro), 0), COUNT(*) FILTER (WHERE balance_micro < 0)"
            " FROM billing_ledgeraccount WHERE kind = 'arrears' AND owner_id = ANY(%s)",
            [dry_ids or [0]],
        )
        worst_arrears, in_arrears = cur.fetchone()
    row(
        "dry accounts: max arrears (CNY)",
        f"{worst_arrears / 1e6:.6f}",
        f"<= {DRY_AMOUNT}",
        worst_arrears <= DRY_AMOUNT_MICRO,
        key="max_arrears_micro",
        raw=worst_arrears,
    )
    row(
        "dry accounts in arrears",
        f"{in_arrears} of {DRY_ACCOUNTS}",
        key="dry_in_arrears",
        raw=in_arrears,
    )
    if os.environ.get("BENCH_BOOKS", "1") != "0":  # 0: skip the books (comparison runs)
        for metric, value, target, ok in drift_rows():
            row(metric, value, target, ok)
    for name, shares in cpu_rows:
        row(
            f"cpu % of 2 cores: {name}",
            share_text(shares),
            raw={g: round(v * 100, 1) for g, v in shares.items()},
        )
    return rows
