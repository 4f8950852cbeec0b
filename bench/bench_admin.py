"""The ledger admin at scale (issue 15, "Fast at scale"): every list and detail page of
charges, transactions, postings, grants, lots, top-ups and the revenue account, timed
through Django's test client as a logged-in superuser over a seeded ledger of
BENCH_ADMIN_CHARGES charges (default 1,000,000; three postings each, so ~3 million
postings) over BENCH_ADMIN_ACCOUNTS accounts (default 20,000).

Seeding is set-based SQL (INSERT … SELECT generate_series), once per database: users,
balance accounts and top-ups through the ORM, then buckets, one 1,000.00 lot and one
100.00 trial grant per account, their top-up and grant transactions, and the charges
(0.01 each: 0.004 trial + 0.006 cash → revenue), every transaction balanced in its own
INSERT (the zero-sum trigger checks each statement), postings only inserted
(append-only trigger), then the cached balances of buckets, lots and grants set from
the postings. `reconcile_all` must find nothing afterwards.

Each page: one warm-up request, then the median of BENCH_ADMIN_REPEAT (default 5)
timed requests, with DEBUG off; the queries of one more request are counted, and none
may be a COUNT without LIMIT or a DISTINCT over the ledger tables. A page's value reads
"wall ms (this process's CPU ms / database ms) queries": on a shared 2-core machine the
wall time also holds the time spent waiting for a core.
"""

from __future__ import annotations

import os
import re
import statistics
import time

N_CHARGES = int(os.environ.get("BENCH_ADMIN_CHARGES", "1000000"))
N_ACCOUNTS = int(os.environ.get("BENCH_ADMIN_ACCOUNTS", "20000"))
REPEAT = int(os.environ.get("BENCH_ADMIN_REPEAT", "5"))
CHUNK = 100_000
TARGET_MS = 300
DOMAIN = "bench-admin.local"
MODELS = ["qwen-max", "qwen-plus", "qwen-turbo", "deepseek-v3", "glm-4"]


def _exec(sql, params=None):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def _reserve(table, n):
    """n consecutive ids from the table's sequence (the bench database is private)."""
    (seq,) = _exec("SELECT pg_get_serial_sequence(%s, 'id')", [table])[0]
    ((base,),) = _exec("SELECT nextval(%s)", [seq])
    _exec("SELECT setval(%s, %s)", [seq, base + n])
    return base


def seeded():
    from billing.models import UsageEvent

    return UsageEvent.objects.filter(request_id=f"adm-{N_CHARGES - 1}").exists()


def seed():
    from django.db import transaction

    from accounts.models import BalanceAccount, User
    from billing.chart import platform_account_id
    from billing.models import AccountKind, Lot
    from topups.models import TopUp

    if seeded():
        return False
    t0 = time.time()
    have = User.objects.filter(email__endswith=f"@{DOMAIN}").count()
    for start in range(have, N_ACCOUNTS, 5000):
        with transaction.atomic():
            users = User.objects.bulk_create(
                [
                    User(email=f"adm-{i}@{DOMAIN}", password="!")
                    for i in range(start, min(N_ACCOUNTS, start + 5000))
                ]
            )
            BalanceAccount.objects.bulk_create([BalanceAccount(user=u) for u in users])
    print(f"  users: {time.time() - t0:.1f}s", flush=True)
    clearing = platform_account_id(AccountKind.CLEARING, "other")
    expense = platform_account_id(AccountKind.PROMOTION_EXPENSE)
    revenue = platform_account_id(AccountKind.REVENUE)
    with transaction.atomic():
        _exec(
            """
            INSERT INTO billing_ledgeraccount (kind, channel, balance_micro, currency, owner_id)
            SELECT k, '', 0, 'CNY', b.id
              FROM accounts_balanceaccount b JOIN accounts_user u ON u.id = b.user_id
             CROSS JOIN unnest(ARRAY['cash','trial','discount','hold','arrears','dispute_debt']) k
             WHERE u.email LIKE %s
            ON CONFLICT DO NOTHING
            """,
            [f"%@{DOMAIN}"],
        )
        _exec("DROP TABLE IF EXISTS bench_admin_acc")
        _exec(
            """
            CREATE TABLE bench_admin_acc AS
            SELECT (row_number() OVER (ORDER BY b.id) - 1)::int AS idx, b.id AS account_id,
                   c.id AS cash_la, t.id AS trial_la, NULL::bigint AS lot_id,
                   NULL::bigint AS grant_id
              FROM accounts_balanceaccount b JOIN accounts_user u ON u.id = b.user_id
              JOIN billing_ledgeraccount c ON c.owner_id = b.id AND c.kind = 'cash'
              JOIN billing_ledgeraccount t ON t.owner_id = b.id AND t.kind = 'trial'
             WHERE u.email LIKE %s
            """,
            [f"%@{DOMAIN}"],
        )
        _exec("ALTER TABLE bench_admin_acc ADD PRIMARY KEY (idx)")
        _exec(
            """
            INSERT INTO billing_lot (channel, amount_currency, amount, remaining_micro, held_micro,
                   payer_name, payer_account, third_party, idempotency_key, memo, created_at,
                   account_id)
            SELECT 'other', 'CNY', 1000.00, 0, 0, '', '', false, 'adm-lot-' || account_id, '',
                   now() - interval '91 days', account_id
              FROM bench_admin_acc ORDER BY idx
            """
        )
        _exec(
            """
            INSERT INTO billing_grant (kind, amount_currency, amount, remaining_micro, expires_at,
                   state, idempotency_key, memo, created_at, account_id)
            SELECT 'trial', 'CNY', 100.000000, 0, now() + interval '365 days', 'active',
                   'adm-grant-' || account_id, '', now() - interval '91 days', account_id
              FROM bench_admin_acc ORDER BY idx
            """
        )
        _exec(
            """
            UPDATE bench_admin_acc a SET lot_id = l.id, grant_id = g.id
              FROM billing_lot l, billing_grant g
             WHERE l.idempotency_key = 'adm-lot-' || a.account_id
               AND g.idempotency_key = 'adm-grant-' || a.account_id
            """
        )
        # a top-up transaction per lot and a grant transaction per grant, each balanced
        n = N_ACCOUNTS
        base = _reserve("billing_ledgertransaction", 2 * n)
        _exec(
            """
            INSERT INTO billing_ledgertransaction (id, kind, idempotency_key, memo, created_at,
                   account_id)
            SELECT %(base)s + idx, 'top_up', 'lot:adm-lot-' || account_id, '',
                   now() - interval '91 days', account_id FROM bench_admin_acc
            UNION ALL
            SELECT %(base)s + %(n)s + idx, 'grant', 'grant:adm-grant-' || account_id, '',
                   now() - interval '91 days', account_id FROM bench_admin_acc
            """,
            {"base": base, "n": n},
        )
        _exec(
            """
            INSERT INTO billing_posting (transaction_id, ledger_account_id, bucket, lot_id,
                   grant_id, amount_micro, currency)
            SELECT %(base)s + a.idx, v.la, v.bucket, v.lot, v.gr, v.amount, 'CNY'
              FROM bench_admin_acc a CROSS JOIN LATERAL (VALUES
                   (%(clearing)s::bigint, 'clearing', NULL::bigint, NULL::bigint,
                    -1000000000::bigint),
                   (a.cash_la, 'cash', a.lot_id, NULL, 1000000000))
                   v(la, bucket, lot, gr, amount)
            UNION ALL
            SELECT %(base)s + %(n)s + a.idx, v.la, v.bucket, v.lot, v.gr, v.amount, 'CNY'
              FROM bench_admin_acc a CROSS JOIN LATERAL (VALUES
                   (%(expense)s::bigint, 'promotion_expense', NULL::bigint, NULL::bigint,
                    -100000000::bigint),
                   (a.trial_la, 'trial', NULL, a.grant_id, 100000000))
                   v(la, bucket, lot, gr, amount)
            """,
            {"base": base, "n": n, "clearing": clearing, "expense": expense},
        )
    lots = dict(
        Lot.objects.filter(idempotency_key__startswith="adm-lot-").values_list("account_id", "id")
    )
    for start in range(0, len(lots), 5000):
        chunk = list(lots.items())[start : start + 5000]
        TopUp.objects.bulk_create(
            [
                TopUp(account_id=a, channel="bank", amount="1000.00", state="paid", lot_id=lot)
                for a, lot in chunk
            ]
        )
    print(f"  buckets, lots, grants, top-ups: {time.time() - t0:.1f}s", flush=True)
    done = _exec("SELECT count(*) FROM billing_usageevent WHERE request_id LIKE 'adm-%%'")[0][0]
    for lo in range(done - done % CHUNK, N_CHARGES, CHUNK):
        hi = min(N_CHARGES, lo + CHUNK)
        with transaction.atomic():
            base = _reserve("billing_ledgertransaction", hi - lo)
            params = {
                "lo": lo,
                "hi": hi - 1,
                "base": base - lo,
                "n": N_ACCOUNTS,
                "total": N_CHARGES,
                "revenue": revenue,
                "models": MODELS,
            }
            series = """
              FROM generate_series(%(lo)s, %(hi)s) i
              JOIN bench_admin_acc a ON a.idx = i %% %(n)s"""
            when = "now() - interval '90 days' + (i::float8 / %(total)s) * interval '90 days'"
            _exec(
                f"""INSERT INTO billing_ledgertransaction (id, kind, memo, created_at, account_id)
                SELECT %(base)s + i, 'usage', 'usage: 1 event', {when} + interval '2 seconds',
                       a.account_id {series}""",
                params,
            )
            _exec(
                f"""INSERT INTO billing_posting (transaction_id, ledger_account_id, bucket, lot_id,
                       grant_id, amount_micro, currency)
                SELECT %(base)s + i, v.la, v.bucket, v.lot, v.gr, v.amount, 'CNY' {series}
                 CROSS JOIN LATERAL (VALUES
                       (a.trial_la, 'trial', NULL::bigint, a.grant_id, -4000::bigint),
                       (a.cash_la, 'cash', a.lot_id, NULL, -6000),
                       (%(revenue)s::bigint, 'revenue', NULL, NULL, 10000))
                       v(la, bucket, lot, gr, amount)""",
                params,
            )
            _exec(
                # what ingestion and settlement write (billing/services/settlement.py
                # _mark_settled): the parts, the split, the transaction and settled_at, the
                # call's time and tokens as the gateway reported them
                f"""INSERT INTO billing_usageevent (request_id, model, amount_micro, trial_micro,
                       discount_micro, cash_micro, arrears_micro, split, created_at, account_id,
                       transaction_id, settled_at, occurred_at, input_tokens, output_tokens)
                SELECT 'adm-' || i, (%(models)s::text[])[1 + i %% 5], 10000, 4000, 0, 6000, 0,
                       jsonb_build_array(
                         jsonb_build_object('bucket', 'trial', 'grant', a.grant_id,
                                            'amount', '0.004000'),
                         jsonb_build_object('bucket', 'cash', 'lot', a.lot_id,
                                            'amount', '0.006000')),
                       {when}, a.account_id, %(base)s + i, {when} + interval '2 seconds',
                       {when} - interval '1 second', 800 + i %% 400, 200 + i %% 100
                       {series}""",
                params,
            )
        print(f"  charges {hi:,}: {time.time() - t0:.1f}s", flush=True)
    with transaction.atomic():  # the caches, from the postings (R-LED-4)
        _exec(
            """
            UPDATE billing_ledgeraccount la SET balance_micro = s.total
              FROM (SELECT p.ledger_account_id AS id, SUM(p.amount_micro) AS total
                      FROM billing_posting p
                     WHERE p.ledger_account_id IN (SELECT cash_la FROM bench_admin_acc
                                                   UNION ALL SELECT trial_la FROM bench_admin_acc)
                     GROUP BY p.ledger_account_id) s
             WHERE la.id = s.id
            """
        )
        _exec(
            """
            UPDATE billing_lot l SET remaining_micro = s.total
              FROM (SELECT lot_id, SUM(amount_micro) AS total FROM billing_posting
                     WHERE lot_id IS NOT NULL AND bucket = 'cash' GROUP BY lot_id) s
             WHERE l.id = s.lot_id AND l.idempotency_key LIKE 'adm-lot-%%'
            """
        )
        _exec(
            """
            UPDATE billing_grant g SET remaining_micro = s.total
              FROM (SELECT grant_id, SUM(amount_micro) AS total FROM billing_posting
                     WHERE grant_id IS NOT NULL AND bucket = 'trial' GROUP BY grant_id) s
             WHERE g.id = s.grant_id AND g.idempotency_key LIKE 'adm-grant-%%'
            """
        )
    if _exec("SELECT to_regclass('billing_dailyusage') IS NOT NULL")[0][0]:
        with transaction.atomic():  # the daily rollup settlement keeps beside the events
            _exec(
                """
                INSERT INTO billing_dailyusage (account_id, day, model, api_key_id, calls,
                       amount_micro, input_tokens, output_tokens)
                SELECT account_id, (created_at AT TIME ZONE 'Asia/Shanghai')::date, model,
                       api_key_id, COUNT(*), SUM(amount_micro), COALESCE(SUM(input_tokens), 0),
                       COALESCE(SUM(output_tokens), 0)
                  FROM billing_usageevent WHERE request_id LIKE 'adm-%%'
                 GROUP BY 1, 2, 3, 4
                ON CONFLICT DO NOTHING
                """
            )
    for table in (
        "billing_usageevent",
        "billing_ledgertransaction",
        "billing_posting",
        "billing_lot",
        "billing_grant",
        "billing_ledgeraccount",
        "topups_topup",
        "accounts_user",
        "accounts_balanceaccount",
    ):
        # what autovacuum does to an insert-only table (PostgreSQL ≥ 13): statistics and
        # the visibility map (index-only scans of the ids of a later page)
        _exec(f"VACUUM (ANALYZE) {table}")
    print(f"  seeded in {time.time() - t0:.1f}s", flush=True)
    return True


def _bounded(sql):
    """A COUNT the guard lets pass: top-ups counted in one state (the workbench's queues
    and today's paid top-ups): the state index serves it, and top-ups are one row per
    payment, not per API call. Every COUNT over the ledger's tables (usage events,
    transactions, postings, lots, grants) still needs a LIMIT."""
    return '"TOPUPS_TOPUP"' in sql and re.search(r'"TOPUPS_TOPUP"\."STATE" = \'', sql)


def _ledger_sql(queries):
    sql = [q["sql"].upper() for q in queries]
    sql = [s for s in sql if re.search(r'"(BILLING|TOPUPS)_', s)]
    full = [s for s in sql if "COUNT(" in s and "LIMIT" not in s and not _bounded(s)]
    distinct = [s for s in sql if re.search(r"\bDISTINCT\b", s)]
    return full + distinct


def pages():
    """(label, url) of every page: unfiltered lists, the usual filters, detail pages."""
    from django.urls import reverse

    from accounts.models import User
    from billing.chart import platform_account_id
    from billing.models import AccountKind, Grant, LedgerTransaction, Lot, Posting, UsageEvent
    from topups.models import TopUp

    def cl(model, query="", app="billing"):
        return reverse(f"admin:{app}_{model}_changelist") + query

    def ch(model, pk, app="billing"):
        return reverse(f"admin:{app}_{model}_change", args=[pk])

    revenue = platform_account_id(AccountKind.REVENUE)
    charge = UsageEvent.objects.order_by("-id").first()
    old_charge = UsageEvent.objects.filter(request_id=f"adm-{N_CHARGES // 2}").first() or charge
    txn = LedgerTransaction.objects.order_by("-id").first()
    posting = Posting.objects.order_by("-id").first()
    lot = Lot.objects.order_by("-id").first()
    grant = Grant.objects.order_by("-id").first()
    topup = TopUp.objects.order_by("-id").first()
    email = f"adm-{N_ACCOUNTS // 3}@{DOMAIN}"
    customer = User.objects.get(email=email).pk
    return [
        ("charges list", cl("usageevent")),
        ("charges page 100", cl("usageevent", "?p=100")),
        ("charges page 1000", cl("usageevent", "?p=1000")),
        ("charges: model filter", cl("usageevent", "?model=glm-4")),
        ("charges: past 7 days", cl("usageevent", f"?created_at__gte={_days_ago(7)}")),
        ("charges: search email", cl("usageevent", f"?q={email}")),
        ("charges: search request id", cl("usageevent", f"?q={old_charge.request_id}")),
        ("charge detail", ch("usageevent", old_charge.pk)),
        ("transactions list", cl("ledgertransaction")),
        ("transactions: kind=usage", cl("ledgertransaction", "?kind__exact=usage")),
        ("transactions: kind=top_up", cl("ledgertransaction", "?kind__exact=top_up")),
        ("transactions: kind=refund (none)", cl("ledgertransaction", "?kind__exact=refund")),
        ("transactions: search email", cl("ledgertransaction", f"?q={email}")),
        ("transaction detail", ch("ledgertransaction", txn.pk)),
        ("postings list", cl("posting")),
        ("postings: revenue account", cl("posting", f"?ledger_account__id__exact={revenue}")),
        ("postings: one transaction", cl("posting", f"?transaction__id__exact={txn.pk}")),
        ("postings: one lot", cl("posting", f"?lot__id__exact={lot.pk}")),
        ("posting detail", ch("posting", posting.pk)),
        ("grants list", cl("grant")),
        ("grants: search email", cl("grant", f"?q={email}")),
        ("grant detail", ch("grant", grant.pk)),
        ("lots list", cl("lot")),
        ("lots: search email", cl("lot", f"?q={email}")),
        ("lot detail", ch("lot", lot.pk)),
        ("top-ups list", cl("topup", app="topups")),
        ("top-up detail", ch("topup", topup.pk, app="topups")),
        (
            "top-ups: paid today",
            cl("topup", f"?state__exact=paid&paid_at__gte={_today()}", "topups"),
        ),
        ("top-ups: search order number", cl("topup", f"?q={topup.out_trade_no}", "topups")),
        ("charges: today", cl("usageevent", f"?created_at__gte={_today()}")),
        ("users list", cl("user", app="accounts")),
        ("users: search email part", cl("user", f"?q=adm-{N_ACCOUNTS // 3}", "accounts")),
        ("customer page", reverse("admin:customer", args=[customer])),
        ("customer search: email", reverse("admin:customer_search") + f"?q={email}"),
        (
            "customer search: order number",
            reverse("admin:customer_search") + f"?q={topup.out_trade_no}",
        ),
        (
            "customer search: request id",
            reverse("admin:customer_search") + f"?q={old_charge.request_id}",
        ),
        ("workbench (admin home)", reverse("admin:index")),
        ("ledger accounts list", cl("ledgeraccount")),
        ("ledger accounts: search email", cl("ledgeraccount", f"?q={email}")),
        ("revenue account detail", ch("ledgeraccount", revenue)),
    ]


# The transaction list's kind filter is served by the partial index
# billing_txn_kind_id_not_usage (billing migration 0012; usage rows are outside its
# predicate, so settlement never writes to it). The bench checks it is there.
KIND_INDEX_PRESENT = "SELECT to_regclass('billing_txn_kind_id_not_usage') IS NOT NULL"


def _today():
    """Today's start in the portal's time zone, as the workbench's links give it."""
    from datetime import datetime, time

    from django.utils import timezone
    from django.utils.http import urlencode

    start = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    return urlencode({"": str(start)})[1:]


def _days_ago(days):
    from datetime import timedelta

    from django.utils import timezone

    return (timezone.localdate() - timedelta(days=days)).isoformat()


def time_pages(client, entries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    rows = []
    with override_settings(DEBUG=False):
        for label, url in entries:
            resp = client.get(url)  # warm-up (URL resolver, templates, plans)
            # the customer search answers a redirect to the one customer it found
            if resp.status_code not in (200, 302):
                rows.append((f"{label}: status", resp.status_code, "200", False))
                continue
            took, cpu = [], []
            for _ in range(REPEAT):
                t0, c0 = time.perf_counter(), time.process_time()
                client.get(url)
                took.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            with CaptureQueriesContext(connection) as ctx:
                client.get(url)
            ms = statistics.median(took)
            db = sum(float(q["time"]) for q in ctx.captured_queries) * 1000
            bad = _ledger_sql(ctx.captured_queries)
            n = len(ctx.captured_queries)
            rows.append(
                (
                    label,
                    f"{ms:.0f} ({statistics.median(cpu):.0f}/{db:.0f}) {n}q",
                    f"< {TARGET_MS} ms",
                    ms < TARGET_MS and not bad,
                )
            )
            if bad:
                rows.append((f"{label}: full counts/DISTINCT", len(bad), "0", False))
            print(f"  {label}: {ms:.0f} ms, {db:.0f} ms in the database", flush=True)
    return rows


def run():
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from billing.chart import platform_account_id
    from billing.models import AccountKind
    from billing.services.reconcile import reconcile_all

    t0 = time.time()
    fresh = seed()
    seeded_in = time.time() - t0
    ((charges, postings),) = _exec(
        "SELECT (SELECT reltuples::bigint FROM pg_class WHERE relname = 'billing_usageevent'),"
        " (SELECT reltuples::bigint FROM pg_class WHERE relname = 'billing_posting')"
    )
    rows = [
        (
            "seeded charges / postings (estimate)",
            f"{charges:,} / {postings:,}",
            "",
            None,
        ),
        ("seed seconds", f"{seeded_in:.0f}" + ("" if fresh else " (already seeded)"), "", None),
    ]
    admin_user = User.objects.filter(email="bench-admin@bench-admin.local").first()
    if admin_user is None:
        admin_user = User.objects.create_superuser("bench-admin@bench-admin.local", "!unused")
    client = Client()
    client.force_login(admin_user)
    present = _exec(KIND_INDEX_PRESENT)[0][0]
    rows.append(("transaction kind index (migration 0012)", present, "True", bool(present)))
    rows += time_pages(client, pages())
    # the revenue account's exact sum, on request only (what the page no longer does)
    revenue = platform_account_id(AccountKind.REVENUE)
    t0 = time.perf_counter()
    resp = client.get(reverse("admin:billing_ledgeraccount_sum", args=[revenue]))
    rows.append(
        (
            "revenue: exact sum on request, ms",
            f"{(time.perf_counter() - t0) * 1000:.0f}",
            "",
            resp.status_code == 302,
        )
    )
    if os.environ.get("BENCH_ADMIN_RECONCILE", "1") == "1":
        t0 = time.perf_counter()
        report = reconcile_all()
        rows.append(
            (
                f"seeded books reconcile ({time.perf_counter() - t0:.0f} s)",
                len(report.drifts),
                "0",
                report.ok and report.postings_total_micro == 0,
            )
        )
    return [
        {"bench": "admin", "metric": m, "value": v, "target": t, "ok": ok} for m, v, t, ok in rows
    ]
