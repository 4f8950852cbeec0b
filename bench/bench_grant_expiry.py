"""Grant expiry at scale: `expire_due_grants` (one ledger transaction per grant,
set-based, SKIP LOCKED) against a plain UPDATE of the same grant rows.

Target (README, "Benchmarks"): within 5× the time of the plain UPDATE. Runs on the bench
accounts of bench/seed.py with BENCH_GRANTS due grants (default 50,000).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

N_GRANTS = int(os.environ.get("BENCH_GRANTS", "50000"))


def _seed_due_grants(n):
    """n trial grants over the bench accounts, already due; written through the engine."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import BalanceAccount
    from billing.chart import platform_account_id
    from billing.models import AccountKind, Grant, TxnKind
    from billing.services.engine import Entry, Leg, lock_buckets, write_rows

    owners = list(
        BalanceAccount.objects.filter(user__email__endswith="@bench.local")
        .order_by("id")
        .values_list("id", flat=True)
    )
    stamp = int(time.time())
    past = timezone.now() - timedelta(days=1)
    expense = platform_account_id(AccountKind.PROMOTION_EXPENSE)
    for start in range(0, n, 5000):
        count = min(5000, n - start)
        with transaction.atomic():
            chosen = [owners[(start + i) % len(owners)] for i in range(count)]
            buckets = lock_buckets(set(chosen))
            grants = Grant.objects.bulk_create(
                [
                    Grant(
                        account_id=o,
                        kind="trial",
                        amount="0.01",
                        expires_at=past,
                        idempotency_key=f"bench-exp-{stamp}-{start + i}",
                    )
                    for i, o in enumerate(chosen)
                ]
            )
            write_rows(
                [
                    Entry(
                        TxnKind.GRANT,
                        g.account_id,
                        [
                            Leg(expense, "promotion_expense", -10_000),
                            Leg(buckets[g.account_id]["trial"].pk, "trial", 10_000, grant_id=g.pk),
                        ],
                    )
                    for g in grants
                ]
            )
    return past


def run():
    from django.db import connection, transaction
    from django.utils import timezone
    from seed import seed as seed_accounts

    from billing.models import Grant
    from billing.services.ledger import expire_due_grants
    from billing.services.reconcile import reconcile_all

    seed_accounts()  # the 10,000 bench accounts (idempotent)
    t0 = time.time()
    _seed_due_grants(N_GRANTS)
    print(f"seeded {N_GRANTS} due grants in {time.time() - t0:.1f}s", flush=True)
    due = Grant.objects.filter(
        state="active", remaining_micro__gt=0, expires_at__lte=timezone.now()
    )
    ids = list(due.values_list("id", flat=True))
    # the baseline: one plain UPDATE of exactly these rows, rolled back
    t0 = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE billing_grant SET state = 'expired', remaining_micro = 0"
                " WHERE id = ANY(%s::bigint[])",
                ["{" + ",".join(map(str, ids)) + "}"],
            )
        transaction.set_rollback(True)
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    expired = 0
    while True:
        n = expire_due_grants(limit=5000)
        expired += n
        if n == 0:
            break
    ours = time.perf_counter() - t0
    report = reconcile_all()
    ratio = ours / plain if plain else float("inf")
    rows = [
        ("due grants", len(ids), "", None),
        ("plain UPDATE seconds", f"{plain:.2f}", "", None),
        ("expire_due_grants seconds", f"{ours:.2f}", "", None),
        ("grants expired", expired, str(len(ids)), expired == len(ids)),
        ("ratio to plain UPDATE", f"{ratio:.1f}", "<= 5", ratio <= 5),
        ("reconcile findings after", len(report.drifts), "0", report.ok),
    ]
    return [
        {"bench": "grant_expiry", "metric": m, "value": v, "target": t, "ok": ok}
        for m, v, t, ok in rows
    ]
