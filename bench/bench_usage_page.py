"""The usage page at 10,000,000 events (issue 22): it reads only the daily rollup, so its
cost depends on the rows of the range asked for, not on how many events there were.

Seeds, set-based, the rollup rows an account with 10,000,000 settled events would have
(365 Beijing days × 40 models × 20 keys and keyless calls: 306,600 rows, ~33 events each),
730,000 rows of 500 other accounts around it, and 5,000 real events through the
gateway's ingestion; then times the page through Django's full request cycle (session,
middleware, template) by day, model and key, for the default 30 days and the longest
range (92 days) with a model and a key filter.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench_usage_page \\
        .venv/bin/python bench/bench_usage_page.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

EVENTS = 10_000_000
DAYS, MODELS, KEYS = 365, 40, 20
OTHERS = 500
RUNS = 30


def seed():
    from accounts.models import User
    from accounts.services import create_api_key
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage

    user = User.objects.filter(email="usage-bench@example.com").first()
    if user is not None:
        return user
    user = User.objects.create_user(
        email="usage-bench@example.com",
        password="bench-pass-123",
        email_verified_at=timezone.now(),
        language="zh-hans",
    )
    keys = [create_api_key(user, name=f"key {i}") for i in range(KEYS)]
    account = user.balance_account
    rows = DAYS * MODELS * (KEYS + 1)
    per_row = -(-EVENTS // rows)  # rounded up: at least EVENTS in all
    today = timezone.localdate()
    started = time.perf_counter()
    with connection.cursor() as cur:
        # the account: every day × model × key (and keyless), ~33 events per row
        cur.execute(
            """
            INSERT INTO billing_dailyusage (account_id, day, model, api_key_id, calls,
                   amount_micro, input_tokens, output_tokens)
            SELECT %s, %s::date - d, 'model-' || m, k.id, %s, %s * (1000 + m * 37),
                   %s * 900, %s * 250
              FROM generate_series(0, %s - 1) d, generate_series(1, %s) m,
                   (SELECT unnest(%s::bigint[]) AS id UNION ALL SELECT NULL) k
            """,
            [
                account.pk,
                today,
                per_row,
                per_row,
                per_row,
                per_row,
                DAYS,
                MODELS,
                [k.pk for k, _raw in keys],
            ],
        )
        # other accounts around it (their rows share the index)
        cur.execute(
            """
            INSERT INTO billing_dailyusage (account_id, day, model, api_key_id, calls,
                   amount_micro, input_tokens, output_tokens)
            SELECT 1000000 + a, %s::date - d, 'model-' || m, NULL, 10, 12000, 9000, 2500
              FROM generate_series(1, %s) a, generate_series(0, %s - 1) d,
                   generate_series(1, 4) m
            """,
            [today, OTHERS, DAYS],
        )
        cur.execute("ANALYZE billing_dailyusage")
    refs = resolve_api_keys([raw for _k, raw in keys])
    for batch in range(5):
        record_usage(
            [
                ReportedUsage(
                    f"bench-page-{batch}-{i}",
                    refs[keys[i % KEYS][1]],
                    f"model-{i % MODELS + 1}",
                    1500,
                    None,
                    900,
                    250,
                )
                for i in range(1000)
            ]
        )
    print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
    return user


def timings(client, params):
    url = reverse("billing:usage")
    client.get(url, params)  # warm: templates, translations, plans
    spent = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        response = client.get(url, params)
        spent.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.95) - 1]


def main():
    if "postgres" not in settings.DATABASES["default"]["ENGINE"]:
        sys.exit("bench: PostgreSQL only")
    call_command("migrate", verbosity=0)
    user = seed()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*), SUM(calls) FROM billing_dailyusage WHERE account_id = %s",
            [user.balance_account.pk],
        )
        rows, calls = (int(v) for v in cur.fetchone())
        cur.execute("SELECT COUNT(*) FROM billing_dailyusage")
        (table,) = cur.fetchone()
    client = Client()
    client.force_login(user)
    today = timezone.localdate()
    key = user.balance_account.api_keys.order_by("id").first()
    longest = {"start": (today - timedelta(days=91)).isoformat(), "end": today.isoformat()}
    cases = [
        ("by day, 30 days", {"by": "day"}),
        ("by model, 30 days", {"by": "model"}),
        ("by key, 30 days", {"by": "key"}),
        ("by day, 92 days", {"by": "day", **longest}),
        ("by model, 92 days", {"by": "model", **longest}),
        ("by key, 92 days", {"by": "key", **longest}),
        (
            "by day, 92 days, model + key",
            {"by": "day", **longest, "model": "model-7", "api_key": key.pk},
        ),
    ]
    results = {}
    print(f"account: {rows:,} rollup rows = {calls:,} settled events; table {table:,} rows")
    print(f"{'case':34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, params in cases:
        p50, p95 = timings(client, params)
        results[name] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
        print(f"{name:34} {p50:8.1f} {p95:8.1f}", flush=True)
    print(json.dumps({"rollup_rows": rows, "events": calls, "table_rows": table, **results}))


if __name__ == "__main__":
    main()
