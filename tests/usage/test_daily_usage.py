"""The daily usage rollup (billing.models.DailyUsage) and its reader
(billing.selectors.usage_totals): settlement keeps it equal to a scan of the settled
events grouped by account × Beijing day × model × key, also when events settle in
chunks of any size (R-USE-1, R-USE-5)."""

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import create_api_key
from billing.models import DailyUsage, UsageEvent
from billing.selectors import usage_totals
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot
from billing.services.metering import ReportedUsage, record_usage
from billing.services.settlement import charge_usage, settle_chunk
from tests.factories import UserFactory, cny

# 15:30 UTC is 23:30 in Beijing: events minutes apart fall on two Beijing days
T0 = datetime(2026, 11, 3, 15, 30, tzinfo=UTC)

event_st = st.tuples(
    st.integers(0, 1),  # account
    st.integers(0, 2),  # key (2: no key, charged through the account)
    st.sampled_from(["glm-4", "deepseek-chat"]),
    st.integers(1, 2_000_000),  # micro
    st.integers(0, 90),  # minutes after T0
    st.one_of(st.none(), st.integers(0, 10**12)),  # input tokens
    st.one_of(st.none(), st.integers(0, 10**6)),  # output tokens
)
scenario_st = st.tuples(
    st.lists(event_st, min_size=1, max_size=20), st.lists(st.integers(1, 7), min_size=1)
)

SCAN = """
SELECT account_id, (created_at AT TIME ZONE 'Asia/Shanghai')::date, model, api_key_id,
       COUNT(*), SUM(amount_micro), COALESCE(SUM(input_tokens), 0),
       COALESCE(SUM(output_tokens), 0)
  FROM billing_usageevent WHERE transaction_id IS NOT NULL AND account_id = ANY(%s)
 GROUP BY 1, 2, 3, 4
"""


def scan(account_ids):
    with connection.cursor() as cur:
        cur.execute(SCAN, [list(account_ids)])
        return {tuple(r[:4]): tuple(int(x) for x in r[4:]) for r in cur.fetchall()}


def rollup(account_ids):
    return {
        (d.account_id, d.day, d.model, d.api_key_id): (
            d.calls,
            d.amount_micro,
            d.input_tokens,
            d.output_tokens,
        )
        for d in DailyUsage.objects.filter(account_id__in=account_ids)
    }


def world():
    out = []
    for _ in range(2):
        user = UserFactory(phone="")
        credit_lot(user.balance_account, cny("5"), channel="alipay", idempotency_key=f"w{user.pk}")
        keys = [create_api_key(user, name=f"k{i}") for i in range(2)]
        out.append((user.balance_account, keys))
    return out


def run_scenario(scenario, counter):
    events, chunks = scenario
    n = next(counter)
    accounts = world()
    refs = resolve_api_keys([raw for _acc, keys in accounts for _k, raw in keys])
    for j, (a, k, model, micro, minutes, tin, tout) in enumerate(events):
        account, keys = accounts[a]
        rid = f"{n}-{j}"
        if k == 2:
            charge_usage(account, cny(micro / 10**6), request_id=rid, model=model)
        else:
            (r,) = record_usage(
                [ReportedUsage(rid, refs[keys[k][1]], model, micro, None, tin, tout)]
            )
            assert r.status == "accepted"
            # receipt time as the scenario says (pending rows only: allowed by the trigger)
            UsageEvent.objects.filter(request_id=rid).update(
                created_at=T0 + timedelta(minutes=minutes)
            )
    for size in itertools.cycle(chunks):
        if not settle_chunk(size):
            break
    ids = [acc.pk for acc, _ in accounts]
    assert rollup(ids) == scan(ids)
    assert sum(v[0] for v in rollup(ids).values()) == len(events)


@pytest.mark.django_db
def test_rollup_equals_a_scan_of_settled_events():
    """R-USE-5 / R-USE-1: for any events over two accounts, two keys and no key, two
    models, receipt times across Beijing midnight, with and without token counts, and
    settlement in chunks of random sizes (one-by-one charge_usage mixed in), the daily
    rollup equals the settled events grouped by account × Beijing day × model × key."""
    counter = itertools.count()

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(scenario_st)
    def check(scenario):
        run_scenario(scenario, counter)

    check()


@pytest.mark.django_db
def test_pending_events_are_not_in_the_rollup(account):
    """R-USE-5: the rollup holds settled usage only; it grows in the settling transaction."""
    key, raw = create_api_key(account.user, name="k")
    (ref,) = resolve_api_keys([raw]).values()
    record_usage([ReportedUsage("p-1", ref, "glm-4", 1500, None, 10, 20)])
    assert not DailyUsage.objects.filter(account=account).exists()
    settle_chunk(10)
    row = DailyUsage.objects.get(account=account)
    assert (row.calls, row.amount_micro, row.input_tokens, row.output_tokens) == (1, 1500, 10, 20)
    assert row.api_key_id == key.pk


@pytest.mark.django_db
def test_usage_totals_by_day_model_and_key(account):
    """R-USE-1: usage_totals groups the rollup by Beijing day (end inclusive), model or
    key, and narrows by model and key."""
    key, raw = create_api_key(account.user, name="k")
    (ref,) = resolve_api_keys([raw]).values()
    other = UserFactory(phone="").balance_account
    d1, d2 = date(2026, 11, 1), date(2026, 11, 2)
    rows = [
        (account.pk, d1, "a", key.pk, 2, 300, 10, 5),
        (account.pk, d1, "b", None, 1, 100, 0, 0),
        (account.pk, d2, "a", key.pk, 4, 700, 40, 9),
        (other.pk, d2, "a", None, 9, 900, 0, 0),
    ]
    DailyUsage.objects.bulk_create(
        DailyUsage(
            account_id=a,
            day=d,
            model=m,
            api_key_id=k,
            calls=c,
            amount_micro=am,
            input_tokens=i,
            output_tokens=o,
        )
        for a, d, m, k, c, am, i, o in rows
    )
    by_day = usage_totals(account.pk, start=d1, end=d2, by="day")
    assert [(r.key, r.calls, r.amount_micro) for r in by_day] == [(d1, 3, 400), (d2, 4, 700)]
    by_model = usage_totals(account.pk, start=d1, end=d2, by="model")
    assert [(r.key, r.calls, r.input_tokens, r.output_tokens) for r in by_model] == [
        ("a", 6, 50, 14),
        ("b", 1, 0, 0),
    ]
    by_key = usage_totals(account.pk, start=d1, end=d1, by="key")
    assert [(r.key, r.amount_micro) for r in by_key] == [(key.pk, 300), (None, 100)]
    assert [r.key for r in usage_totals(account.pk, start=d1, end=d2, by="day", model="b")] == [d1]
    narrowed = usage_totals(account.pk, start=d1, end=d2, by="model", api_key_id=key.pk)
    assert [(r.key, r.calls) for r in narrowed] == [("a", 6)]
    assert str(by_day[0].amount.amount) == "0.000400"
    with pytest.raises(ValueError):
        usage_totals(account.pk, start=d1, end=d2, by="hour")
