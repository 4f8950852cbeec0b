"""Ledger benchmarks: single-call charging and batch ingestion over real HTTP
(gunicorn + PostgreSQL) against `pgbench -N -c 8` on the same database, then a
zero-drift proof (cache == ledger, postings sum to zero, replays charge once)."""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import random
import time
import uuid

from common import HOST, PORT, Gunicorn, percentile, pgbench_tps

N_ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "10000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "12"))
CLIENTS = 8
BATCH = 1000
BATCH_CLIENTS = int(os.environ.get("BENCH_BATCH_CLIENTS", "3"))
TOKEN = "bench-gateway-token"
THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # > 1: gthread workers with keep-alive
KEEP_ALIVE = THREADS > 1
SEED_CASH = "1000.00"


def raw_key(i):
    return f"sk-bench-{i:06d}-key-material"


def seed():
    """10,000 accounts with an API key and one 1,000.00 lot each (idempotent).

    Written in bulk through the ledger engine, so the books are as real as
    any: a top-up transaction per lot, cached balances moved with it."""
    from django.db import transaction

    from accounts.api_keys import hash_secret
    from accounts.models import ApiKey, BalanceAccount, User
    from billing.chart import platform_account_id
    from billing.micro import to_micro
    from billing.models import AccountKind, Lot, TxnKind
    from billing.services.engine import Entry, Leg, lock_buckets, write
    from core.money import parse_amount

    have = set(User.objects.filter(email__endswith="@bench.local").values_list("email", flat=True))
    todo = [i for i in range(N_ACCOUNTS) if f"bench-{i}@bench.local" not in have]
    cash = to_micro(parse_amount(SEED_CASH))
    for start in range(0, len(todo), 2000):
        chunk = todo[start : start + 2000]
        with transaction.atomic():
            users = User.objects.bulk_create(
                [User(email=f"bench-{i}@bench.local", password="!") for i in chunk]
            )
            BalanceAccount.objects.bulk_create(
                [BalanceAccount(user=u) for u in users], ignore_conflicts=True
            )
            accounts = dict(
                BalanceAccount.objects.filter(user__in=users).values_list("user__email", "id")
            )
            ApiKey.objects.bulk_create(
                [
                    ApiKey(
                        account_id=accounts[f"bench-{i}@bench.local"],
                        name="bench",
                        prefix=f"sk-bn{i:06d}",
                        secret_hash=hash_secret(raw_key(i)),
                    )
                    for i in chunk
                ]
            )
            ids = [accounts[f"bench-{i}@bench.local"] for i in chunk]
            buckets = lock_buckets(ids)
            lots = Lot.objects.bulk_create(
                [
                    Lot(
                        account_id=a,
                        channel="other",
                        amount=parse_amount(SEED_CASH),
                        idempotency_key=f"bench-seed-{a}",
                    )
                    for a in ids
                ]
            )
            clearing = platform_account_id(AccountKind.CLEARING, "other")
            write(
                [
                    Entry(
                        TxnKind.TOP_UP,
                        lot.account_id,
                        [
                            Leg(clearing, "clearing", -cash),
                            Leg(buckets[lot.account_id]["cash"].pk, "cash", cash, lot_id=lot.pk),
                        ],
                        f"lot:bench-seed-{lot.account_id}",
                    )
                    for lot in lots
                ]
            )
    return len(todo)


_conn = None


def _post(path, body, keep_alive=False):
    """POST JSON; with keep_alive the process reuses one HTTP/1.1 connection, as a
    gateway's connection pool would."""
    global _conn
    conn = _conn if keep_alive and _conn is not None else None
    if conn is None:
        conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    try:
        conn.request(
            "POST",
            f"/api/v1/gateway/{path}",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        resp = conn.getresponse()
        out = resp.status, json.loads(resp.read())
    except Exception:
        conn.close()
        _conn = None
        raise
    if keep_alive and not resp.will_close:
        _conn = conn
    else:
        conn.close()
        _conn = None
    return out


def _single_client(idx, run_id, deadline, queue):
    rnd = random.Random(idx)
    latencies, errors, n = [], 0, 0
    while time.time() < deadline:
        i = rnd.randrange(N_ACCOUNTS)
        body = {
            "request_id": f"s-{run_id}-{idx}-{n}",
            "api_key": raw_key(i),
            "model": "bench-model",
            "amount": "0.012345",
        }
        t0 = time.perf_counter()
        status, out = _post("usage", body, keep_alive=KEEP_ALIVE)
        latencies.append(time.perf_counter() - t0)
        n += 1
        if status != 200 or out.get("status") != "charged":
            errors += 1
    queue.put((latencies, errors))


def _batch_client(idx, run_id, deadline, queue):
    rnd = random.Random(1000 + idx)
    events, errors, n, latencies = 0, 0, 0, []
    while time.time() < deadline:
        body = {
            "events": [
                {
                    "request_id": f"b-{run_id}-{idx}-{n}-{j}",
                    "api_key": raw_key(rnd.randrange(N_ACCOUNTS)),
                    "model": "bench-model",
                    "amount": "0.000123",
                }
                for j in range(BATCH)
            ]
        }
        t0 = time.perf_counter()
        status, out = _post("usage/batch", body, keep_alive=KEEP_ALIVE)
        latencies.append(time.perf_counter() - t0)
        n += 1
        if status != 200:
            errors += BATCH
        else:
            events += out["charged"]
            errors += out["errors"]
    queue.put(((events, latencies), errors))


def _warm_client(idx, run_id, deadline, queue):
    """Touch every worker (URL resolver, DB connection, first query plans) before timing."""
    n = 0
    while time.time() < deadline:
        _post("authorize", {"api_key": raw_key(idx)}, keep_alive=KEEP_ALIVE)
        body = {
            "request_id": f"w-{run_id}-{idx}-{n}",
            "api_key": raw_key(idx),
            "model": "bench-model",
            "amount": "0.000001",
        }
        _post("usage", body, keep_alive=KEEP_ALIVE)
        n += 1
    queue.put(([], 0))


def _guarded(target, idx, run_id, deadline, queue):
    try:
        target(idx, run_id, deadline, queue)
    except Exception as exc:  # noqa: BLE001 - a failed client must not hang the run
        queue.put(exc)


def _drive(target, clients, run_id, seconds=None):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = time.time()
    deadline = start + (seconds or SECONDS)
    procs = [
        ctx.Process(target=_guarded, args=(target, i, run_id, deadline, queue))
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=(seconds or SECONDS) + 120) for _ in procs]
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        for p in procs:
            p.join()
        raise RuntimeError(f"bench client failed: {failed[0]!r}")
    for p in procs:
        p.join()
    return results, time.time() - start


def drift_rows(sample_request_id):
    from django.db import connection

    from billing.models import Charge
    from billing.services.reconcile import reconcile_all

    t0 = time.perf_counter()
    report = reconcile_all()
    took = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM (SELECT request_id FROM billing_charge GROUP BY request_id"
            " HAVING COUNT(*) > 1) d"
        )
        dup = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM billing_ledgertransaction WHERE kind = 'usage'")
        usage_txns = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM billing_posting")
        postings = cur.fetchone()[0]
    charges = Charge.objects.count()
    return [
        ("cache == ledger (findings)", len(report.drifts), "0", not report.drifts),
        ("sum of all postings", report.postings_total_micro, "0", report.postings_total_micro == 0),
        ("duplicate request ids", dup, "0", dup == 0),
        ("usage txns == charges", f"{usage_txns} / {charges}", "equal", usage_txns == charges),
        ("reconcile_all seconds", f"{took:.2f} ({postings} postings)", "", None),
    ]


def run():
    import django.db

    os.environ["GATEWAY_SERVICE_TOKEN"] = TOKEN
    t0 = time.time()
    created = seed()
    print(f"seeded {created} new accounts in {time.time() - t0:.1f}s", flush=True)
    django.db.connections.close_all()
    tps = pgbench_tps()
    print(f"pgbench -N -c 8: {tps:.0f} tps", flush=True)
    run_id = uuid.uuid4().hex[:8]
    rows = [("pgbench -N -c 8 tps", f"{tps:.0f}", "", None)]
    with Gunicorn(
        workers=int(os.environ.get("BENCH_WORKERS", "8")),
        threads=THREADS,
        extra_env={"GATEWAY_SERVICE_TOKEN": TOKEN},
    ):
        _drive(_warm_client, CLIENTS, run_id, seconds=4)
        sample = f"replay-{run_id}"
        first = _post(
            "usage",
            {"request_id": sample, "api_key": raw_key(0), "model": "bench-model", "amount": "0.5"},
        )[1]
        results, elapsed = _drive(_single_client, CLIENTS, run_id)
        lat = [x for r, _ in results for x in r]
        errors = sum(e for _, e in results)
        rate = (len(lat) - errors) / elapsed
        rows += [
            ("single: charges/s (8 clients)", f"{rate:.0f}", "", None),
            ("single: p50 ms", f"{percentile(lat, 50) * 1000:.1f}", "", None),
            ("single: p99 ms", f"{percentile(lat, 99) * 1000:.1f}", "", None),
            ("single: errors", errors, "0", errors == 0),
            ("single: ratio to pgbench tps", f"{rate / tps:.2f}", ">= 0.3", rate / tps >= 0.3),
        ]
        print(f"single: {rate:.0f} charges/s", flush=True)
        results, elapsed = _drive(_batch_client, BATCH_CLIENTS, run_id)
        events = sum(r[0] for r, _ in results)
        blat = [x for r, _ in results for x in r[1]]
        errors = sum(e for _, e in results)
        erate = events / elapsed
        rows += [
            (f"batch: events/s ({BATCH}/batch)", f"{erate:.0f}", "", None),
            ("batch: p50 ms per batch", f"{percentile(blat, 50) * 1000:.0f}", "", None),
            ("batch: errors", errors, "0", errors == 0),
            ("batch: ratio to pgbench tps", f"{erate / tps:.1f}", ">= 5", erate / tps >= 5),
        ]
        print(f"batch: {erate:.0f} events/s", flush=True)
        # a replay after the run must move nothing
        from billing.models import Charge, Posting

        before = (Charge.objects.count(), Posting.objects.count())
        status, out = _post(
            "usage",
            {"request_id": sample, "api_key": raw_key(0), "model": "bench-model", "amount": "5"},
        )
        after = (Charge.objects.count(), Posting.objects.count())
        replay_ok = (
            status == 200
            and out.get("status") == "replayed"
            and out.get("amount") == first.get("amount")
            and before == after
        )
        rows.append(("replayed request id moves nothing", out.get("status"), "replayed", replay_ok))
    rows += drift_rows(sample)
    return [
        {"bench": "ledger", "metric": m, "value": v, "target": t, "ok": ok} for m, v, t, ok in rows
    ]
