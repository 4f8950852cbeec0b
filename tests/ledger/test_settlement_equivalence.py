"""Chunked settlement equals charging one by one (R-USE-5, with R-USE-2 and R-USE-3),
proved by hypothesis.

Two worlds of three accounts get the same grants (trial and discount, different
expiries, some expiring between events), the same cash lots (small, so arrears
happen), the same top-ups and the same usage events at the same receipt times. World A
charges each event one by one as it arrives (settlement.charge_usage); world B meters
them (metering.record_usage) and settles in chunks of random sizes, at random moments
and at the end (settle_chunk(limit=k)). A top-up in world B settles the account's
pending usage first (lock_buckets), as in production. Afterwards every grant, lot,
bucket and arrears figure, and every event's parts and split, are the same in both.

Time is a clock the test moves (django.utils.timezone.now patched; an event metered on
PostgreSQL, stamped by the database's clock, gets the test's time written over it), so
receipt times, expiries and the order of lots are exact.
"""

import itertools
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import create_api_key
from billing.models import (
    Grant,
    LedgerAccount,
    Lot,
    PackageHolding,
    ResourcePackage,
    SpendLimit,
    UsageEvent,
)
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.packages import buy_package
from billing.services.settlement import charge_usage, settle_chunk
from billing.services.spend_limits import set_spend_limit
from tests.factories import UserFactory

from .settlement_checks import assert_books_exact

ACCOUNTS = 3
T0 = timezone.now().replace(microsecond=0) + timedelta(days=1)

grant_st = st.tuples(
    st.sampled_from(["trial", "discount"]),
    st.integers(1, 500),  # fen
    st.one_of(st.none(), st.integers(1, 60)),  # expires this many seconds after T0
)
package_st = st.tuples(  # a resource package (issue 23): face value, expiry
    st.integers(1, 500),  # fen
    st.one_of(st.none(), st.integers(1, 60)),  # expires this many seconds after T0
)
account_st = st.tuples(
    st.lists(grant_st, max_size=3),
    st.lists(st.integers(1, 300), max_size=2),  # cash lots, fen
    st.lists(package_st, max_size=2),
    st.booleans(),  # a soft daily spend limit of 1.00 CNY (R-USE-7): its counter
)
step_st = st.integers(0, 8)  # seconds the clock moves before the operation
event_st = st.tuples(
    st.just("event"),
    step_st,
    st.integers(0, ACCOUNTS - 1),
    st.integers(1, 1_500_000),
    st.sampled_from(["m", "glm-4"]),  # glm-4: the model the packages cover
)
op_st = st.one_of(
    event_st,
    event_st,
    event_st,  # mostly events
    st.tuples(st.just("settle"), step_st, st.integers(1, 9)),
    st.tuples(st.just("top_up"), step_st, st.integers(0, ACCOUNTS - 1), st.integers(1, 300)),
)
scenario_st = st.tuples(
    st.lists(account_st, min_size=ACCOUNTS, max_size=ACCOUNTS),
    st.lists(op_st, min_size=8, max_size=24),
    st.lists(st.integers(1, 9), min_size=1, max_size=4),  # chunk sizes of the final drain
)


class Clock:
    def __init__(self, at):
        self.at = at

    def now(self):
        return self.at


def cny_fen(fen):
    return Money(Decimal(fen) / 100, "CNY")


def new_world(tag):
    """[(balance account, API key, raw key, tag, index)] for ACCOUNTS new users."""
    out = []
    for i in range(ACCOUNTS):
        user = UserFactory(phone="")
        key, raw = create_api_key(user, name="k")
        out.append((user.balance_account, key, raw, tag, i))
    return out


def fund(world, accounts, n):
    for (account, _key, _raw, tag, i), (grants, lots, packages, limit) in zip(
        world, accounts, strict=True
    ):
        for g, (kind, fen, expires) in enumerate(grants):
            grant_funds(
                account,
                cny_fen(fen),
                kind=kind,
                expires_at=None if expires is None else T0 + timedelta(seconds=expires),
                idempotency_key=f"{n}-{tag}{i}-g{g}",
            )
        for lot_no, fen in enumerate(lots):
            credit_lot(
                account, cny_fen(fen), channel="alipay", idempotency_key=f"{n}-{tag}{i}-l{lot_no}"
            )
        for p, (fen, expires) in enumerate(packages):  # R-PKG-3: each paid 0.01 from cash
            credit_lot(account, cny_fen(1), channel="alipay", idempotency_key=f"{n}-{tag}{i}-pl{p}")
            pkg = ResourcePackage.objects.create(
                name_zh="包",
                name_en="pkg",
                models_covered=["glm-4"],
                face_micro=fen * 10_000,
                price=cny_fen(1),
                validity_days=30,
                sale_starts_at=T0 - timedelta(days=1),
            )
            holding = buy_package(
                account=account, package_id=pkg.pk, idempotency_key=f"{n}-{tag}{i}-p{p}"
            )
            if expires is not None:
                PackageHolding.objects.filter(pk=holding.pk).update(
                    expires_at=T0 + timedelta(seconds=expires)
                )
        if limit:
            set_spend_limit(account=account, period="day", amount="1.00", hard=False)


def figures(world):
    """Everything settlement moves, per account, with grant and lot ids replaced by
    their position in the account (the worlds have different ids)."""
    out = []
    for account, *_ in world:
        grants = list(Grant.objects.filter(account=account).order_by("id"))
        lots = list(Lot.objects.filter(account=account).order_by("id"))
        g_pos = {g.pk: n for n, g in enumerate(grants)}
        l_pos = {lot.pk: n for n, lot in enumerate(lots)}

        holdings = list(PackageHolding.objects.filter(account=account).order_by("id"))
        h_pos = {h.pk: n for n, h in enumerate(holdings)}

        def where(part, g_pos=g_pos, l_pos=l_pos, h_pos=h_pos):
            if "package" in part:
                return ("package", h_pos[part["package"]], part["amount"])
            if "grant" in part:
                return ("grant", g_pos[part["grant"]], part["amount"])
            if "lot" in part:
                return ("lot", l_pos[part["lot"]], part["amount"])
            return (part["bucket"], None, part["amount"])

        events = [
            (
                c.amount_micro,
                c.trial_micro,
                c.discount_micro,
                c.cash_micro,
                c.arrears_micro,
                c.package_micro,
                [where(p) for p in c.split],
                c.created_at,
            )
            for c in UsageEvent.objects.filter(account=account).order_by("id")
        ]
        out.append(
            {
                "grants": [(g.kind, g.state, g.remaining_micro) for g in grants],
                "lots": [(lot.remaining_micro, lot.held_micro) for lot in lots],
                "buckets": dict(
                    LedgerAccount.objects.filter(owner=account).values_list("kind", "balance_micro")
                ),
                "events": events,
                "packages": [(h.state, h.remaining_micro) for h in holdings],
                "limits": list(
                    SpendLimit.objects.filter(account=account).values_list(
                        "period_start", "spent_micro", "notified_pct"
                    )
                ),
            }
        )
    return out


def check_equivalence(scenario, worlds, counter):
    accounts, ops, drain = scenario
    n = next(counter)
    one_by_one, chunked = worlds
    clock = Clock(T0 - timedelta(hours=1))
    with mock.patch("django.utils.timezone.now", clock.now):
        fund(one_by_one, accounts, n)
        fund(chunked, accounts, n)
        keys = resolve_api_keys([entry[2] for entry in chunked])
        clock.at = T0
        for j, op in enumerate(ops):
            clock.at += timedelta(seconds=op[1])
            if op[0] == "event":
                _, _, i, micro, model = op
                charge_usage(
                    one_by_one[i][1],
                    Money(Decimal(micro) / 1_000_000, "CNY"),
                    request_id=f"{n}-A-{j}",
                    model=model,
                )
                (r,) = record_usage(
                    [ReportedUsage(f"{n}-B-{j}", keys[chunked[i][2]], model, micro)]
                )
                assert r.status == "accepted"
                # PostgreSQL stamps receipt with its own clock: give it the test's
                UsageEvent.objects.filter(request_id=f"{n}-B-{j}").update(created_at=clock.at)
            elif op[0] == "settle":
                settle_chunk(op[2])
            else:
                _, _, i, fen = op
                for world in (one_by_one, chunked):
                    account, tag = world[i][0], world[i][3]
                    credit_lot(
                        account, cny_fen(fen), channel="alipay", idempotency_key=f"{n}-{tag}t{j}"
                    )
        clock.at += timedelta(seconds=1)
        for size in itertools.cycle(drain):
            if not settle_chunk(size):
                break
    assert figures(chunked) == figures(one_by_one)
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()


def _run(max_examples, **hypothesis_settings):
    counter = itertools.count()

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
        **hypothesis_settings,
    )
    @given(scenario_st)
    def check(scenario):
        # fresh accounts each example: the worlds' figures start from zero
        check_equivalence(scenario, (new_world("A"), new_world("B")), counter)

    check()
    assert_books_exact()


@pytest.mark.django_db
def test_chunked_settlement_equals_one_by_one():
    """R-USE-5 / R-USE-2 / R-USE-3: for any events over three accounts with trial and
    discount grants expiring between them, small lots (arrears), top-ups (paying
    arrears, settling pending usage first) and settlement in chunks of random sizes at
    random moments, every grant, lot, bucket and arrears figure and every event's parts
    and split equal charging the same events one by one in the order received; with
    resource packages for one model, some expiring between events (R-PKG-3: the
    package pays first, the split names it), and the spend-limit counters (R-USE-7). Runs on
    the suite's database (CI: PostgreSQL, with its set-based settlement update)."""
    _run(30)
