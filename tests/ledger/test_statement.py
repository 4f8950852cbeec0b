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
from billing.selectors import STATEMENT_PAGE, daily_history
from billing.services.settlement import charge_usage
from billing.services.ledger import credit_lot, grant_funds
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
    with django_assert_max_num_queries(13):
        assert _rows(signed_in.get(reverse("billing:balance"))) == 1
    for n in range(STATEMENT_PAGE + 9):
        charge_usage(account, cny("0.01"), request_id=f"k-{n}", model="m")
    with django_assert_max_num_queries(13):
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
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
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
