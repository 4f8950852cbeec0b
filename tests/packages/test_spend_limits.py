"""Spend limits (R-USE-7): authorize refuses a hard limit reached, soft limits only
notify, the next period allows again with no job, notices at 50/80/100 % once."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.services import create_api_key
from billing.models import SpendLimit
from billing.services.authorization import authorize, resolve_api_keys
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot
from billing.services.limits import (
    hard_limit_refusal,
    period_end,
    period_start,
    spend_overview,
)
from billing.services.metering import ReportedUsage, record_usage
from billing.services.packages import buy_package
from billing.services.settlement import run_settler
from billing.services.spend_limits import set_spend_limit
from notices.models import Notice
from tests.ledger.conftest import cny

from .helpers import make_package


def _ref(api_key):
    return resolve_api_keys([api_key.raw])[api_key.raw]


def _use(api_key, n, micro, model="m", prefix="e"):
    ref = _ref(api_key)
    record_usage([ReportedUsage(f"{prefix}{i}", ref, model, micro) for i in range(n)])


def test_a_hard_key_limit_refuses_once_reached_pending_included(account, api_key):
    """R-USE-7: spend = settled + pending; reaching a hard key limit refuses with
    spend_limit_exceeded, which limit, and when it resets."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    set_spend_limit(account=account, api_key=api_key, period="month", amount="5.00", hard=True)
    _use(api_key, 3, 1_000_000)  # 3 CNY settled
    run_settler()
    assert authorize(_ref(api_key)).allowed
    _use(api_key, 2, 1_000_000, prefix="p")  # 2 CNY pending: 5 reached
    result = authorize(_ref(api_key))
    assert not result.allowed and result.code == "spend_limit_exceeded"
    assert result.limit["scope"] == "key" and result.limit["period"] == "month"
    assert result.limit["resets_at"] == period_end("month", period_start("month"))
    other, raw = create_api_key(account.user, name="other")
    assert authorize(resolve_api_keys([raw])[raw]).allowed  # the cap was on one key


def test_an_account_limit_counts_every_key_and_packages(account, api_key):
    """R-USE-7: an account limit counts all keys' usage, package use included."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    set_spend_limit(account=account, period="day", amount="3.00", hard=True)
    _use(api_key, 3, 1_000_000, model="glm-4")  # paid by the package
    run_settler()
    assert authorize(_ref(api_key)).code == "spend_limit_exceeded"
    assert SpendLimit.objects.get().spent_micro == 3_000_000


def test_a_soft_limit_only_notifies(user, account, api_key):
    """R-USE-7: a soft limit never refuses; notices at 50, 80, 100 % once each."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    set_spend_limit(account=account, period="month", amount="10.00", hard=False)
    for step, n in enumerate([5, 3, 2, 4]):
        _use(api_key, n, 1_000_000, prefix=f"s{step}-")
        run_settler()
    assert authorize(_ref(api_key)).allowed
    levels = [
        n.dedupe_key.rsplit(":", 1)[1]
        for n in Notice.objects.filter(user=user, kind="spend_limit_reached").order_by("id")
    ]
    assert levels == ["50", "80", "100"]


def test_the_next_period_allows_again_without_a_job(account, api_key):
    """R-USE-7: a counter of an older period counts as zero: nothing resets it."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    set_spend_limit(account=account, period="day", amount="1.00", hard=True)
    _use(api_key, 1, 1_000_000)
    run_settler()
    assert authorize(_ref(api_key)).code == "spend_limit_exceeded"
    SpendLimit.objects.update(period_start=period_start("day") - dt.timedelta(days=1))
    assert authorize(_ref(api_key)).allowed
    rows = [(1, None, "day", 1_000_000, period_start("day").isoformat(), 1_000_000)]
    tomorrow = timezone.now() + dt.timedelta(days=1)
    assert hard_limit_refusal(rows, 0, 0, timezone.now()) is not None
    assert hard_limit_refusal(rows, 0, 0, tomorrow) is None


def test_raising_the_limit_allows_again(account, api_key):
    """R-USE-7: refused until the period ends or the limit is raised."""
    credit_lot(account, cny("100"), channel="alipay", idempotency_key="L")
    set_spend_limit(account=account, period="month", amount="1.00", hard=True)
    _use(api_key, 1, 1_000_000)
    run_settler()
    assert not authorize(_ref(api_key)).allowed
    set_spend_limit(account=account, period="month", amount="2.00", hard=True)
    assert authorize(_ref(api_key)).allowed
    (row,) = spend_overview(account)
    assert row["spent"] == cny("1") and row["pct"] == 50


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("0", "non_positive_amount"),
        ("-1", "non_positive_amount"),
        ("1.001", "too_many_decimals"),
        ("abc", "invalid_amount"),
        ("NaN", "non_positive_amount"),
        ("99999999", "limit_too_large"),
    ],
)
def test_bad_limits_are_refused_and_change_nothing(account, amount, code):
    """R-USE-7: positive, whole fen, at most the configured ceiling."""
    with pytest.raises(LedgerError) as exc:
        set_spend_limit(account=account, period="month", amount=amount, hard=True)
    assert exc.value.code == code
    assert not SpendLimit.objects.exists()


def test_periods_are_beijing_calendar_periods():
    """R-USE-7: calendar month and day in Beijing time."""
    late_utc = dt.datetime(2026, 1, 31, 17, 0, tzinfo=dt.UTC)  # 01:00 on Feb 1 in Beijing
    assert period_start("month", late_utc) == dt.date(2026, 2, 1)
    assert period_start("day", late_utc) == dt.date(2026, 2, 1)
    end = period_end("month", dt.date(2026, 12, 1))
    assert end.isoformat() == "2027-01-01T00:00:00+08:00"
