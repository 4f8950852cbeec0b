"""The balance page's statement, chart and CSV (issue 15): every movement, filterable,
paged without counting, exported exactly; money shown one way."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.services import create_api_key
from billing.micro import from_micro
from billing.models import UsageEvent
from billing.selectors import STATEMENT_PAGE, daily_history
from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage
from core.money import yuan
from tests.factories import UserFactory
from tests.refunds.conftest import alipay_topup
from tests.refunds.conftest import ready_user as ready_user  # the fixture

from .conftest import cny, later

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


# session, user, language, notices, buckets, money figures, the page of lines, their
# postings, their first events (ids and counts, then the rows), which events were
# credited back, lots, grants, the chart's two sums, keys: the same however many lines
# and events
BALANCE_PAGE_QUERIES = 16


def _rows(response):
    return response.content.decode().count('class="line line-')


def test_money_is_shown_one_way():
    """R-LED-3: two places half-up with a yuan sign and thousands separators."""
    assert yuan(Decimal("1234.5")) == "¥1,234.50"
    assert yuan(Decimal("-0.755")) == "-¥0.76"
    assert yuan(Decimal("1234567.000005"), 6) == "¥1,234,567.000005"


def test_each_charge_shows_its_key_model_and_what_paid_for_it(signed_in, user, account):
    """R-USE-2: the statement shows which grant and lot paid a call, with its key and model."""
    key, _raw = create_api_key(user, name="laptop")
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="st-lot")
    grant = grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="g")
    charge_usage(key, cny("1.5"), request_id="req-statement-1", model="qwen-max")
    page = signed_in.get(reverse("billing:balance")).content.decode()
    assert "req-statement-1" in page and "qwen-max" in page and key.prefix in page
    assert reverse("topups:by_lot", args=[lot.pk]) in page and f"#{grant.pk}" in page
    assert '<span class="money" title="-¥1.500000">-¥1.50</span>' in page


def test_filters_by_kind_date_and_key(signed_in, user, account):
    """The statement filters by movement kind, local dates and API key."""
    key_a, _ = create_api_key(user, name="a")
    key_b, _ = create_api_key(user, name="b")
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="f-lot")
    charge_usage(key_a, cny("1"), request_id="by-a", model="m")
    charge_usage(key_b, cny("1"), request_id="by-b", model="m")
    url = reverse("billing:balance")
    assert _rows(signed_in.get(url)) == 3
    assert _rows(signed_in.get(url, {"kind": "usage"})) == 2
    only_a = signed_in.get(url, {"api_key": key_a.pk}).content.decode()
    assert "by-a" in only_a and "by-b" not in only_a
    today = timezone.localdate()
    assert _rows(signed_in.get(url, {"since": today.isoformat()})) == 3
    assert _rows(signed_in.get(url, {"until": (today - timedelta(days=1)).isoformat()})) == 0


def test_another_users_key_or_a_bad_range_is_a_form_error(signed_in, account):
    """Another user's key id is refused (400) and shows none of their movements."""
    stranger = UserFactory()
    their_key, _ = create_api_key(stranger, name="theirs")
    credit_lot(stranger.balance_account, cny("3"), channel="alipay", idempotency_key="x")
    charge_usage(their_key, cny("1"), request_id="their-call", model="m")
    response = signed_in.get(reverse("billing:balance"), {"api_key": their_key.pk})
    assert response.status_code == 400 and "their-call" not in response.content.decode()
    response = signed_in.get(
        reverse("billing:balance"), {"since": "2026-02-02", "until": "2026-01-01"}
    )
    assert response.status_code == 400
    csv_response = signed_in.get(reverse("billing:statement_csv"), {"api_key": their_key.pk})
    assert csv_response.status_code == 400


def test_keyset_pages_cost_the_same_queries_however_long_the_history(
    signed_in, account, django_assert_max_num_queries
):
    """Paged by id, never counted: a long history costs what a short one does."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="k-lot")
    with django_assert_max_num_queries(BALANCE_PAGE_QUERIES):
        assert _rows(signed_in.get(reverse("billing:balance"))) == 1
    for n in range(STATEMENT_PAGE + 9):
        charge_usage(account, cny("0.01"), request_id=f"k-{n}", model="m")
    with django_assert_max_num_queries(BALANCE_PAGE_QUERIES):
        first = signed_in.get(reverse("billing:balance"))
    assert _rows(first) == STATEMENT_PAGE and 'id="statement-older"' in first.content.decode()
    shown = [int(part.split('"')[0]) for part in first.content.decode().split('data-txn="')[1:]]
    oldest_shown = min(shown)
    second = signed_in.get(reverse("billing:balance"), {"before": oldest_shown})
    assert _rows(second) == 10 and 'id="statement-older"' not in second.content.decode()


def test_csv_has_every_movement_with_exact_figures_in_local_time(signed_in, account):
    """The export holds all matching movements, six places, times with +08:00."""
    credit_lot(account, cny("2"), channel="alipay", idempotency_key="c-lot")
    for n in range(3):
        charge_usage(account, cny("0.333333"), request_id=f"c-{n}", model="m")
    response = signed_in.get(reverse("billing:statement_csv"), {"kind": "usage"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 4
    assert {row[2] for row in rows[1:]} == {"-0.333333"}
    assert all(row[0].endswith("+08:00") for row in rows[1:])


def test_the_chart_walks_the_balance_back_day_by_day(account, monkeypatch):
    """Each day's end balance is today's balance minus later days' movements."""
    now = timezone.now()
    for days_ago, move in (
        (2, lambda: credit_lot(account, cny("10"), channel="alipay", idempotency_key="h-lot")),
        (1, lambda: charge_usage(account, cny("3"), request_id="h-1", model="m")),
        (0, lambda: charge_usage(account, cny("2"), request_id="h-2", model="m")),
    ):
        # the rows' created_at come from timezone.now(): move the clock, not the rows
        monkeypatch.setattr(timezone, "now", lambda d=days_ago: now - timedelta(days=d))
        move()
    monkeypatch.undo()
    history = daily_history(account, 4, timezone.localdate())
    assert [from_micro(b).amount for _d, b, _u in history] == [0, 10, 7, 5]
    assert [from_micro(u).amount for _d, _b, u in history] == [0, 0, 3, 2]


def test_the_page_draws_30_or_90_days(signed_in, account):
    """The chart is inline SVG for 30 days, or 90 on request."""
    page = signed_in.get(reverse("billing:balance")).content.decode()
    assert "<svg" in page and "The last 30 days" in page
    page = signed_in.get(reverse("billing:balance"), {"days": "90"}).content.decode()
    assert "The last 90 days" in page


def test_a_lot_links_to_its_top_up_only_for_its_owner(client, ready_user):
    """A lot leads to the top-up that paid it; another user's lot is 404."""
    topup = alipay_topup(ready_user, cny("20"))
    client.force_login(ready_user)
    response = client.get(reverse("topups:by_lot", args=[topup.lot_id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("topups:detail", args=[topup.pk])
    client.force_login(UserFactory())
    assert client.get(reverse("topups:by_lot", args=[topup.lot_id])).status_code == 404


# ---------------------------------------------------------------- several events per line


def _meter(key_raws, events):
    """Record events (request id, key raw, micro) pending, as the gateway does."""
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage

    refs = resolve_api_keys(list(set(key_raws)))
    return record_usage(
        [ReportedUsage(rid, refs[raw], "qwen-max", micro) for rid, raw, micro in events]
    )


def _settle():
    from billing.services.settlement import run_settler

    return run_settler(seconds=0)


def test_a_usage_line_shows_each_event_it_settled(signed_in, user, account):
    """R-USE-5: one settlement covers several events; its statement line shows each of
    them with request id, model, key, amount and the lot or grant that paid it."""
    key, raw = create_api_key(user, name="laptop")
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="m-lot")
    grant = grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="g")
    _meter([raw], [("multi-1", raw, 800_000), ("multi-2", raw, 700_000)])
    assert _settle() == 2
    page = signed_in.get(reverse("billing:balance")).content.decode()
    assert _rows_kind(page, "usage") == 1  # one line for the settlement
    for rid in ("multi-1", "multi-2"):
        assert f'data-request="{rid}"' in page
    assert page.count(f"<code>{key.prefix}…</code>") >= 2
    assert f"#{grant.pk}" in page and reverse("topups:by_lot", args=[lot.pk]) in page
    # the line moves -1.50 in all; the second event is paid 0.20 by the grant, 0.50 by cash
    assert '<span class="money" title="-¥1.500000">-¥1.50</span>' in page
    assert '<span class="money" title="¥0.500000">¥0.50</span>' in page


def _rows_kind(page, kind):
    return page.count(f'class="line line-{kind}"')


def test_many_events_are_capped_per_line_with_a_link_to_the_rest(
    signed_in, user, account, django_assert_max_num_queries
):
    """R-USE-5: a line shows its first events and "N more", which opens every event of
    the line, paged; the page costs the same queries with 3 events or 60."""
    from billing.selectors import EVENTS_PER_LINE

    _key, raw = create_api_key(user, name="k")
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="cap-lot")
    _meter([raw], [(f"few-{n}", raw, 10_000) for n in range(3)])
    _settle()
    with django_assert_max_num_queries(BALANCE_PAGE_QUERIES):
        signed_in.get(reverse("billing:balance"))
    _meter([raw], [(f"many-{n:03}", raw, 10_000) for n in range(60)])
    _settle()
    with django_assert_max_num_queries(BALANCE_PAGE_QUERIES):
        page = signed_in.get(reverse("billing:balance")).content.decode()
    assert page.count('class="event"') == EVENTS_PER_LINE + 3
    assert f"{60 - EVENTS_PER_LINE} more calls" in page
    txn = UsageEvent.objects.get(request_id="many-000").transaction_id
    url = reverse("billing:usage_events", args=[txn])
    assert url in page
    first = signed_in.get(url).content.decode()
    assert first.count('class="event"') == 60 and "many-059" in first
    paged = signed_in.get(url, {"after": UsageEvent.objects.get(request_id="many-049").pk})
    assert paged.content.decode().count('class="event"') == 10


def test_the_key_filter_lists_a_shared_line_once_with_that_keys_events(signed_in, user, account):
    """A line holding events of two keys is listed once under either key's filter and
    shows only that key's events (EXISTS, no duplicate rows)."""
    key_a, raw_a = create_api_key(user, name="a")
    key_b, raw_b = create_api_key(user, name="b")
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="kf-lot")
    _meter([raw_a, raw_b], [("a-1", raw_a, 10_000), ("a-2", raw_a, 10_000), ("b-1", raw_b, 10_000)])
    _settle()
    only_a = signed_in.get(reverse("billing:balance"), {"api_key": key_a.pk}).content.decode()
    assert _rows_kind(only_a, "usage") == 1
    assert 'data-request="a-1"' in only_a and 'data-request="b-1"' not in only_a
    only_b = signed_in.get(reverse("billing:balance"), {"api_key": key_b.pk}).content.decode()
    assert _rows_kind(only_b, "usage") == 1 and 'data-request="a-1"' not in only_b


def test_another_users_line_of_events_is_not_found(signed_in, account):
    """A user opens only their own lines' events; another's is 404."""
    stranger = UserFactory()
    _key, raw = create_api_key(stranger, name="theirs")
    credit_lot(stranger.balance_account, cny("3"), channel="alipay", idempotency_key="x")
    _meter([raw], [("their-call", raw, 10_000)])
    _settle()
    txn = UsageEvent.objects.get(request_id="their-call").transaction_id
    assert signed_in.get(reverse("billing:usage_events", args=[txn])).status_code == 404


def test_csv_writes_one_row_per_event_that_add_up_to_the_line(signed_in, user, account):
    """R-LED-3 / R-USE-5: the export writes a shared usage line as one row per event,
    with its own exact parts, request id, key and what paid it; they add up."""
    key, raw = create_api_key(user, name="k")
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="csv-lot")
    _meter([raw], [("csv-1", raw, 600_000), ("csv-2", raw, 700_000)])
    _settle()
    response = signed_in.get(reverse("billing:statement_csv"), {"kind": "usage"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [row[7] for row in rows[1:]] == ["csv-1", "csv-2"]
    assert [row[2] for row in rows[1:]] == ["-0.600000", "-0.400000"]  # 0.30 ran into arrears
    assert rows[2][6] == "Arrears -¥0.300000" and rows[2][8] == key.prefix
    assert "Cash lot #" in rows[1][13] and rows[1][11] == rows[2][11]  # one transaction


def test_pending_usage_is_shown_and_taken_off_available_like_authorize(signed_in, user, account):
    """R-USE-6: the balance page's available is what authorize answers (available −
    unsettled usage); the unsettled calls are listed until the settler takes them."""
    from billing.selectors import balance_summary
    from billing.services.authorization import authorize, resolve_api_keys

    _key, raw = create_api_key(user, name="k")
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="p-lot")
    _meter([raw], [("waiting-1", raw, 1_250_000)])
    summary = balance_summary(account)
    assert summary["pending"] == cny("1.25") and summary["available"] == cny("3.75")
    assert authorize(resolve_api_keys([raw])[raw]).available == summary["available"]
    page = signed_in.get(reverse("billing:balance")).content.decode()
    assert 'id="pending-events"' in page and "waiting-1" in page
    assert '<span id="available"><span class="money" title="¥3.750000">¥3.75</span>' in page
    _settle()
    page = signed_in.get(reverse("billing:balance")).content.decode()
    assert 'id="pending-events"' not in page and 'data-request="waiting-1"' in page
    assert balance_summary(account)["available"] == cny("3.75")


def test_a_credited_back_event_is_marked_on_the_statement(signed_in, user, account):
    """Issue 14: after staff credit back one event, its line marks it and a usage-credit
    line gives the money back."""
    from billing.services.usage_credits import credit_back_usage
    from tests.factories import StaffFactory, grant

    _key, raw = create_api_key(user, name="k")
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="cr-lot")
    _meter([raw], [("cr-1", raw, 1_000_000), ("cr-2", raw, 500_000)])
    _settle()
    staff = grant(StaffFactory(), "billing.credit_back_usage")
    credit_back_usage(UsageEvent.objects.get(request_id="cr-1"), actor=staff, reason="outage")
    page = signed_in.get(reverse("billing:balance")).content.decode()
    assert page.count('class="credited"') == 1 and _rows_kind(page, "usage_credit") == 1
    assert "outage" not in page  # the reason stays with staff
    assert '<span class="money" title="¥1.000000">¥1.00</span>' in page


def test_events_page_and_csv_cost_the_same_queries_for_more_events(
    signed_in, user, account, django_assert_max_num_queries
):
    """No N+1: a line's events page and the CSV export run a fixed number of queries
    whether the lines hold 2 events or 40."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _key, raw = create_api_key(user, name="k")
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="n1-lot")

    def measure(prefix, n):
        _meter([raw], [(f"{prefix}-{i}", raw, 10_000) for i in range(n)])
        _settle()
        txn = UsageEvent.objects.get(request_id=f"{prefix}-0").transaction_id
        with CaptureQueriesContext(connection) as page:
            assert signed_in.get(reverse("billing:usage_events", args=[txn])).status_code == 200
        with CaptureQueriesContext(connection) as export:
            response = signed_in.get(reverse("billing:statement_csv"))
            rows = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
        return len(page.captured_queries), len(export.captured_queries), len(rows)

    small = measure("small", 2)
    large = measure("large", 40)
    assert large[:2] == small[:2]
    assert large[2] == small[2] + 40  # one row per event
