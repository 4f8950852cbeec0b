"""The benchmarks' accounts: 10,000 balance accounts, each with an API key and one
1,000.00 lot (idempotent), plus small prepaid accounts that run dry during a run.

Written in bulk through the ledger engine, so the books are as real as any: a top-up
transaction per lot, cached balances moved with it."""

from __future__ import annotations

import os

N_ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "10000"))
SEED_CASH = "1000.00"


def raw_key(i):
    return f"sk-bench-{i:06d}-key-material"


def seed():
    """The 10,000 bench accounts (idempotent); returns how many were created now."""
    from accounts.models import User

    have = set(User.objects.filter(email__endswith="@bench.local").values_list("email", flat=True))
    todo = [i for i in range(N_ACCOUNTS) if f"bench-{i}@bench.local" not in have]
    for start in range(0, len(todo), 2000):
        chunk = todo[start : start + 2000]
        create_accounts(
            [(f"bench-{i}@bench.local", raw_key(i), f"sk-bn{i:06d}") for i in chunk], SEED_CASH
        )
    return len(todo)


def create_accounts(specs, cash_amount) -> list[int]:
    """[(email, raw key, key prefix)] → new balance accounts, each with that API key and
    one lot of `cash_amount`, in one transaction. Returns the account ids in order."""
    from django.db import transaction

    from accounts.api_keys import hash_secret
    from accounts.models import ApiKey, BalanceAccount, User
    from billing.chart import platform_account_id
    from billing.micro import to_micro
    from billing.models import AccountKind, Lot, TxnKind
    from billing.services.engine import Entry, Leg, lock_buckets, write
    from core.money import parse_amount

    cash = to_micro(parse_amount(cash_amount))
    with transaction.atomic():
        users = User.objects.bulk_create([User(email=e, password="!") for e, _, _ in specs])
        BalanceAccount.objects.bulk_create(
            [BalanceAccount(user=u) for u in users], ignore_conflicts=True
        )
        accounts = dict(
            BalanceAccount.objects.filter(user__in=users).values_list("user__email", "id")
        )
        ApiKey.objects.bulk_create(
            [
                ApiKey(account_id=accounts[e], name="bench", prefix=p, secret_hash=hash_secret(k))
                for e, k, p in specs
            ]
        )
        ids = [accounts[e] for e, _, _ in specs]
        buckets = lock_buckets(ids)
        lots = Lot.objects.bulk_create(
            [
                Lot(
                    account_id=a,
                    channel="other",
                    amount=parse_amount(cash_amount),
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
    return ids
