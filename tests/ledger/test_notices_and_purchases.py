"""Low-balance notices (R-USE-4) and prepaid purchases (R-USE-3).

Charges here go one by one (settlement.charge_usage: meter and settle at once); the
notices of chunked settlement are in test_settlement_notices.py."""

import pytest
from django.core.exceptions import ValidationError

from accounts.services import set_low_balance_threshold
from billing.models import Posting
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.purchases import InsufficientBalance, purchase_package
from billing.services.settlement import charge_usage, run_settler
from notices.models import Notice

from .conftest import assert_reconciled, cny, later, summary


def kinds(user):
    return list(Notice.objects.filter(user=user).order_by("id").values_list("kind", flat=True))


def test_low_balance_notice_once_per_crossing(user, account):
    """R-USE-4: crossing the threshold sends one notice, not one per call below it;
    a top-up and a new crossing sends the next one."""
    set_low_balance_threshold(account, cny("5.00"))
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L1")
    charge_usage(account, cny("4"), request_id="a", model="m")  # 6.00 left: above
    assert kinds(user) == []
    charge_usage(account, cny("2"), request_id="b", model="m")  # 4.00: crossed
    charge_usage(account, cny("1"), request_id="c", model="m")  # 3.00: still below
    charge_usage(account, cny("1"), request_id="d", model="m")
    assert kinds(user) == ["low_balance"]
    charge_usage(account, cny("2"), request_id="b", model="m")  # replay: nothing new
    assert kinds(user) == ["low_balance"]
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L2")  # 12.00
    charge_usage(account, cny("8"), request_id="e", model="m")  # 4.00: crossed again
    assert kinds(user) == ["low_balance", "low_balance"]


def test_service_stopped_notice_when_balance_runs_out(user, account):
    """R-USE-4: the call that uses the balance up (service stops) sends its own notice."""
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L")
    charge_usage(account, cny("0.5"), request_id="a", model="m")
    assert kinds(user) == []
    charge_usage(account, cny("0.7"), request_id="b", model="m")  # into arrears
    charge_usage(account, cny("0.7"), request_id="c", model="m")
    assert kinds(user) == ["service_stopped"]


def test_a_batch_settled_at_once_sends_one_notice_per_crossing(user, account, api_key):
    """R-USE-4: a batch of many calls, metered and then settled in one chunk, crossing
    the threshold sends one notice (none at ingestion: nothing moved yet)."""
    set_low_balance_threshold(account, cny("2.00"))
    credit_lot(account, cny("3"), channel="alipay", idempotency_key="L")
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    record_usage([ReportedUsage(f"e{i}", ref, "m", 100_000) for i in range(20)])
    assert kinds(user) == []
    assert run_settler(seconds=0) == 20
    assert kinds(user) == ["low_balance"]
    assert summary(account)["cash"] == 1


def test_threshold_validation(account):
    """R-USE-4/R-LED-3: the threshold is whole fen, CNY and positive."""
    from djmoney.money import Money

    for bad in (cny("1.001"), cny("0"), Money("5", "USD")):
        with pytest.raises(ValidationError):
            set_low_balance_threshold(account, bad)
    set_low_balance_threshold(account, None)
    account.refresh_from_db()
    assert account.low_balance_threshold is None


def test_prepaid_purchase_needs_full_price(account):
    """R-USE-3: a purchase the available balance does not cover is refused and moves
    nothing; a covered one draws in R-USE-2 order."""
    credit_lot(account, cny("3"), channel="alipay", idempotency_key="L")
    grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="T")
    count = Posting.objects.count()
    with pytest.raises(InsufficientBalance) as exc:
        purchase_package(account, cny("4.01"), idempotency_key="p1", description="pkg")
    assert exc.value.code == "insufficient_balance"
    assert Posting.objects.count() == count
    txn = purchase_package(account, cny("4"), idempotency_key="p2", description="pkg")
    assert [s["bucket"] for s in txn.split] == ["trial", "cash"]
    assert summary(account)["available"] == 0
    again = purchase_package(account, cny("4"), idempotency_key="p2", description="pkg")
    assert again.pk == txn.pk  # R-LED-5: replay moves nothing
    assert_reconciled(account)


def test_prepaid_purchase_refused_with_arrears_or_locked(account):
    """R-USE-3: arrears, or a standing that stops consumption, refuse a purchase."""
    from accounts.services import change_standing

    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L")
    charge_usage(account, cny("2"), request_id="over", model="m")
    credit_lot(account, cny("0.5"), channel="alipay", idempotency_key="L2")  # arrears 0.50 left
    with pytest.raises(InsufficientBalance):
        purchase_package(account, cny("0.01"), idempotency_key="p", description="pkg")
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L3")
    change_standing(account, "suspend", reason="test")
    with pytest.raises(ValidationError) as exc:
        purchase_package(account, cny("1"), idempotency_key="p3", description="pkg")
    assert exc.value.code == "account_suspended"


def test_charging_notices_are_written_in_the_users_language(db):
    """R-USE-4 / R-NOT-1: the low-balance and service-stopped notices come from their
    templates in the user's language, with the figures filled in."""
    from tests.factories import UserFactory

    user = UserFactory(language="zh-hans", phone="")
    account = user.balance_account
    set_low_balance_threshold(account, cny("5.00"))
    credit_lot(account, cny("6"), channel="alipay", idempotency_key="zh")
    charge_usage(account, cny("2"), request_id="zh-a", model="m")  # 4.00: crossed
    charge_usage(account, cny("4"), request_id="zh-b", model="m")  # used up
    low, stopped = Notice.objects.filter(user=user).order_by("id")
    assert (low.kind, stopped.kind) == ("low_balance", "service_stopped")
    assert low.subject == "您的可用余额已低于 ¥5.00"
    assert "¥4.00" in low.body
    assert stopped.subject == "服务已暂停：余额已用尽"
