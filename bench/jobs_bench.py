"""Job benchmarks on PostgreSQL, through the ops job framework (ops.services.run_job):

1. expire 1,000,000 due trial grants with the `expire_grants` job, next to a single
   plain SQL UPDATE of the same rows in the same run (rolled back) — target ratio ≤ 5;
2. reconcile 100,000 accounts holding 10,000,000 postings with the `reconcile_ledger`
   job — reported (and it must find no drift in the seeded books).

The books are seeded with set-based SQL (generate_series) so that they are exactly
what the ledger services would have written: a grant transaction per grant
(promotion expense → trial bucket), top-up transactions (clearing → cash bucket)
up to the posting count, and cached balances equal to the postings.

Run: `bash bench/jobs.sh` (resets and uses the database named in BENCH_DATABASE_URL,
default postgres://postgres@127.0.0.1:5432/portal_jobs_bench). Sizes via env:
BENCH_GRANTS, BENCH_ACCOUNTS, BENCH_POSTINGS. `run()` returns rows in the format of
bench/run.py's table, so the ledger's bench runner can include it.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

GRANTS = int(os.environ.get("BENCH_GRANTS", "1000000"))
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "100000"))
POSTINGS = int(os.environ.get("BENCH_POSTINGS", "10000000"))
TOPUP_CHUNK = 1_000_000
RATIO_TARGET = 5.0
GRANT_MICRO = 10_000_000  # ¥10.000000 per grant
TOPUP_MICRO = 1_000_000


def log(msg):
    print(f"[jobs-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sql(cur, statement, params=None):
    cur.execute(statement, params or [])
    return cur


def seed_accounts(n):
    """n users with their balance accounts (ORM bulk inserts: the models fill defaults)."""
    from django.db import transaction

    from accounts.models import BalanceAccount, User

    for start in range(0, n, 10_000):
        with transaction.atomic():
            users = User.objects.bulk_create(
                [
                    User(email=f"jb-{i}@bench.local", password="!")
                    for i in range(start, min(start + 10_000, n))
                ]
            )
            BalanceAccount.objects.bulk_create([BalanceAccount(user=u) for u in users])


def seed_books(cur, *, grants, accounts, postings, due_at):
    from billing.chart import platform_account_id
    from billing.models import AccountKind

    promo = platform_account_id(AccountKind.PROMOTION_EXPENSE)
    clearing = platform_account_id(AccountKind.CLEARING, "other")
    # Seeding only: the zero-sum trigger would re-check every row; the books are balanced
    # by construction (and reconciliation below proves it).
    sql(cur, "SET session_replication_role = replica")
    sql(
        cur,
        """INSERT INTO billing_ledgeraccount (kind, owner_id, channel, balance_micro, currency)
           SELECT k, ba.id, '', 0, 'CNY'
             FROM accounts_balanceaccount ba
             JOIN accounts_user u ON u.id = ba.user_id AND u.email LIKE 'jb-%%@bench.local'
            CROSS JOIN unnest(ARRAY['cash','trial','discount','hold','arrears']) AS k
           ON CONFLICT DO NOTHING""",
    )
    sql(cur, "DROP TABLE IF EXISTS jb_acc")
    sql(
        cur,
        """CREATE TEMP TABLE jb_acc AS
           SELECT (row_number() OVER (ORDER BY ba.id)) - 1 AS n, ba.id AS account_id,
                  t.id AS trial_la, c.id AS cash_la
             FROM accounts_balanceaccount ba
             JOIN accounts_user u ON u.id = ba.user_id AND u.email LIKE 'jb-%%@bench.local'
             JOIN billing_ledgeraccount t ON t.owner_id = ba.id AND t.kind = 'trial'
             JOIN billing_ledgeraccount c ON c.owner_id = ba.id AND c.kind = 'cash'""",
    )
    sql(cur, "CREATE UNIQUE INDEX ON jb_acc (n)")
    sql(cur, "CREATE UNIQUE INDEX ON jb_acc (account_id)")
    sql(cur, "ANALYZE jb_acc")
    log(f"seeding {grants:,} grants (+ a ledger transaction and 2 postings each)")
    sql(
        cur,
        """INSERT INTO billing_grant (account_id, kind, amount, amount_currency, remaining_micro,
                                      expires_at, source_lot_id, state, idempotency_key, memo,
                                      created_at, ended_at)
           SELECT a.account_id, 'trial', %s, 'CNY', %s,
                  %s - (g %% 3600) * interval '1 second', NULL, 'active', 'jb-grant-' || g, '',
                  now(), NULL
             FROM generate_series(0, %s - 1) AS g JOIN jb_acc a ON a.n = g %% %s""",
        [GRANT_MICRO / 1_000_000, GRANT_MICRO, due_at, grants, accounts],
    )
    sql(
        cur,
        """WITH t AS (
             INSERT INTO billing_ledgertransaction (kind, account_id, idempotency_key, memo,
                                                   created_at)
             SELECT 'grant', g.account_id, 'grant:jb-grant-' || g.id, 'bench grant', now()
               FROM billing_grant g WHERE g.idempotency_key LIKE 'jb-grant-%%'
             RETURNING id, account_id, CAST(substr(idempotency_key, 16) AS bigint) AS grant_id)
           INSERT INTO billing_posting (transaction_id, ledger_account_id, bucket, lot_id,
                                        grant_id, amount_micro, currency)
           SELECT t.id, %s, 'promotion_expense', NULL::bigint, NULL::bigint, -%s, 'CNY' FROM t
           UNION ALL
           SELECT t.id, a.trial_la, 'trial', NULL::bigint, t.grant_id, %s, 'CNY'
             FROM t JOIN jb_acc a ON a.account_id = t.account_id""",
        [promo, GRANT_MICRO, GRANT_MICRO],
    )
    topups = max(postings - 2 * grants, 0) // 2
    log(f"seeding {topups:,} top-up transactions ({2 * topups:,} postings)")
    for start in range(0, topups, TOPUP_CHUNK):
        size = min(TOPUP_CHUNK, topups - start)
        sql(
            cur,
            """WITH t AS (
                 INSERT INTO billing_ledgertransaction (kind, account_id, idempotency_key, memo,
                                                       created_at)
                 SELECT 'top_up', a.account_id, NULL, 'bench top-up', now()
                   FROM generate_series(%s, %s) AS s JOIN jb_acc a ON a.n = s %% %s
                 RETURNING id, account_id)
               INSERT INTO billing_posting (transaction_id, ledger_account_id, bucket, lot_id,
                                            grant_id, amount_micro, currency)
               SELECT t.id, %s, 'clearing', NULL::bigint, NULL::bigint, -%s, 'CNY' FROM t
               UNION ALL
               SELECT t.id, a.cash_la, 'cash', NULL::bigint, NULL::bigint, %s, 'CNY'
                 FROM t JOIN jb_acc a ON a.account_id = t.account_id""",
            [start, start + size - 1, accounts, clearing, TOPUP_MICRO, TOPUP_MICRO],
        )
        log(f"  {start + size:,} / {topups:,}")
    log("setting cached bucket balances to the sum of their postings")
    sql(
        cur,
        """UPDATE billing_ledgeraccount la SET balance_micro = s.total
             FROM (SELECT ledger_account_id, SUM(amount_micro) AS total FROM billing_posting
                    WHERE bucket IN ('cash', 'trial') GROUP BY ledger_account_id) s
            WHERE la.id = s.ledger_account_id AND la.owner_id IS NOT NULL""",
    )
    sql(cur, "SET session_replication_role = origin")


MAX_WAL_SIZE = os.environ.get("BENCH_MAX_WAL_SIZE", "16GB")


def set_max_wal_size(value):
    """For the timed phases only, room for the WAL a million-row phase writes, so no
    checkpoint is forced in the middle of one phase and not the other (as pgbench's
    own documentation advises for runs like this); RESET afterwards. Needs a
    superuser; BENCH_MAX_WAL_SIZE=off leaves the server as it is."""
    from django.db import connection

    if MAX_WAL_SIZE == "off":
        return
    with connection.cursor() as cur:
        if value is None:
            cur.execute("ALTER SYSTEM RESET max_wal_size")
        else:
            cur.execute(f"ALTER SYSTEM SET max_wal_size = '{value}'")
        cur.execute("SELECT pg_reload_conf()")


def checkpoint():
    """Flush dirty pages before a timed phase, so neither the baseline nor the job pays
    for writes left over from the seeding or from the other (as fair to both)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")


def count(cur, statement, params=None):
    return sql(cur, statement, params).fetchone()[0]


def run() -> list[dict]:
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from ops.services import run_job

    now = timezone.now()
    due_at = now - datetime.timedelta(hours=1)
    rows = []
    with connection.cursor() as cur:
        have = count(cur, "SELECT COUNT(*) FROM billing_grant WHERE state = 'active'")
    if have:
        sys.exit("jobs bench: the database already has grants; use a fresh one (bench/jobs.sh)")
    started = time.monotonic()
    log(f"seeding {ACCOUNTS:,} accounts")
    seed_accounts(ACCOUNTS)
    with transaction.atomic(), connection.cursor() as cur:
        seed_books(cur, grants=GRANTS, accounts=ACCOUNTS, postings=POSTINGS, due_at=due_at)
    connection.ensure_connection()
    old_autocommit = connection.connection.autocommit
    connection.connection.autocommit = True
    with connection.cursor() as cur:
        sql(cur, "VACUUM ANALYZE")
    connection.connection.autocommit = old_autocommit
    with connection.cursor() as cur:
        n_postings = count(cur, "SELECT COUNT(*) FROM billing_posting")
        n_accounts = count(cur, "SELECT COUNT(DISTINCT owner_id) FROM billing_ledgeraccount")
    log(f"seeded in {time.monotonic() - started:.0f}s: {n_postings:,} postings")

    # Reconciliation of the whole ledger, through the job.
    log("reconcile_ledger job …")
    recon = run_job("reconcile_ledger", now=now)
    log(f"  {recon.status} in {recon.duration.total_seconds():.1f}s, findings {recon.rows_touched}")
    rows.append(
        {
            "bench": "jobs: reconcile_ledger",
            "metric": f"seconds ({n_accounts:,} accounts, {n_postings:,} postings)",
            "value": f"{recon.duration.total_seconds():.1f}",
            "target": "report",
            "ok": None,
        }
    )
    rows.append(
        {
            "bench": "jobs: reconcile_ledger",
            "metric": "drift findings in seeded books",
            "value": recon.rows_touched,
            "target": "0",
            "ok": recon.status == "ok" and recon.rows_touched == 0,
        }
    )

    log(f"timed phases with max_wal_size = {MAX_WAL_SIZE}")
    set_max_wal_size(MAX_WAL_SIZE)
    try:
        rows += timed_expiry(now)
    finally:
        set_max_wal_size(None)
    return rows


def timed_expiry(now):
    from django.db import connection, transaction

    from ops.services import run_job

    old_autocommit = connection.connection.autocommit
    rows = []
    # The baseline: one plain UPDATE of the same rows, rolled back.
    log("plain UPDATE of the same grants (rolled back) …")
    checkpoint()
    with transaction.atomic(), connection.cursor() as cur:
        t = time.monotonic()
        sql(
            cur,
            """UPDATE billing_grant SET state = 'expired', remaining_micro = 0, ended_at = %s
                WHERE state = 'active' AND remaining_micro > 0 AND expires_at <= %s""",
            [now, now],
        )
        updated = cur.rowcount
        plain = time.monotonic() - t
        transaction.set_rollback(True)
    connection.connection.autocommit = True
    with connection.cursor() as cur:
        sql(cur, "VACUUM ANALYZE billing_grant")
    connection.connection.autocommit = old_autocommit
    log(f"  {updated:,} rows in {plain:.1f}s")

    log("expire_grants job …")
    checkpoint()
    expire = run_job("expire_grants", now=now)
    took = expire.duration.total_seconds()
    with connection.cursor() as cur:
        expired = count(cur, "SELECT COUNT(*) FROM billing_grant WHERE state = 'expired'")
        left = count(
            cur,
            "SELECT COALESCE(SUM(balance_micro), 0) FROM billing_ledgeraccount "
            "WHERE kind = 'trial'",
        )
    log(f"  {expire.status}: {expire.rows_touched:,} grants, {expire.batches} batches, {took:.1f}s")
    ratio = took / plain if plain else float("inf")
    rows += [
        {
            "bench": "jobs: expire_grants",
            "metric": f"seconds for {expired:,} grants",
            "value": f"{took:.1f}",
            "target": "report",
            "ok": expire.status == "ok" and expired == GRANTS and left == 0,
        },
        {
            "bench": "jobs: expire_grants",
            "metric": "plain SQL UPDATE of the same rows (s)",
            "value": f"{plain:.1f}",
            "target": "baseline",
            "ok": None,
        },
        {
            "bench": "jobs: expire_grants",
            "metric": "ratio job / plain UPDATE",
            "value": f"{ratio:.2f}",
            "target": f"<= {RATIO_TARGET:g}",
            "ok": ratio <= RATIO_TARGET,
        },
    ]
    log("reconcile_ledger after expiry …")
    after = run_job("reconcile_ledger", now=now)
    rows.append(
        {
            "bench": "jobs: reconcile_ledger",
            "metric": "drift findings after expiring",
            "value": after.rows_touched,
            "target": "0",
            "ok": after.status == "ok" and after.rows_touched == 0,
        }
    )
    return rows


def main():
    rows = run()
    widths = [26, 52, 12, 10, 4]
    print()
    header = ["benchmark", "metric", "value", "target", "ok"]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    failed = False
    for row in rows:
        failed |= row["ok"] is False
        cells = [row["bench"], row["metric"], str(row["value"]), str(row["target"])]
        cells.append({True: "yes", False: "NO", None: ""}[row["ok"]])
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
