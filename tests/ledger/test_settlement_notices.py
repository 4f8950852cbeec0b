"""Low-balance and service-stopped notices fire at settlement, once per crossing
(R-USE-4, R-USE-5): not at ingestion (nothing moved yet), not once per event, not once
per chunk settled below the threshold; a top-up and a new crossing send the next ones."""

import pytest

from accounts.services import set_low_balance_threshold
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot
from billing.services.metering import ReportedUsage, record_usage
from billing.services.settlement import run_settler, settle_chunk
from notices.models import Notice

from .conftest import cny, summary
from .settlement_checks import assert_books_exact

pytestmark = pytest.mark.django_db


def kinds(user):
    return list(Notice.objects.filter(user=user).order_by("id").values_list("kind", flat=True))


def meter(api_key, prefix, count, micro):
    key = resolve_api_keys([api_key.raw])[api_key.raw]
    results = record_usage([ReportedUsage(f"{prefix}{i}", key, "m", micro) for i in range(count)])
    assert {r.status for r in results} == {"accepted"}


def settle_in_chunks(size):
    chunks = 0
    while settle_chunk(size):
        chunks += 1
    return chunks


def test_one_notice_per_crossing_whatever_the_chunks(user, account, api_key):
    """R-USE-4: 150 calls of 0.10 on 10.00 with a 5.00 threshold, settled in chunks of
    7: one low_balance notice (at the chunk that crosses 5.00), none for the chunks
    settled below it, one service_stopped when the balance reaches zero, none for the
    calls that run into arrears after it. A top-up (paying the arrears) and a new
    crossing send one more of each."""
    set_low_balance_threshold(account, cny("5.00"))
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L1")
    meter(api_key, "a", 150, 100_000)
    assert kinds(user) == []  # metered, not settled: no money moved, no notice
    assert settle_in_chunks(7) == 22
    assert kinds(user) == ["low_balance", "service_stopped"]
    low = Notice.objects.get(user=user, kind="low_balance")
    assert "¥4.40" in low.body  # after the crossing chunk: 10.00 − 8 chunks × 7 × 0.10
    s = summary(account)
    assert (s["cash"], s["arrears"]) == (0, 5)

    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L2")  # 15.00 left
    meter(api_key, "b", 100, 50_000)  # 5.00 more: down to 10.00, above the threshold
    settle_in_chunks(9)
    assert kinds(user) == ["low_balance", "service_stopped"]
    meter(api_key, "c", 120, 100_000)  # 12.00 more: crosses 5.00, then runs out
    settle_in_chunks(13)
    assert kinds(user) == ["low_balance", "service_stopped"] * 2
    assert assert_books_exact() > 22


def test_one_chunk_crossing_both_sends_both_once(user, account, api_key):
    """R-USE-4: one chunk taking an account from above the threshold to zero sends one
    low_balance and one service_stopped notice; settling more usage later, in arrears,
    sends nothing."""
    set_low_balance_threshold(account, cny("2.00"))
    credit_lot(account, cny("3"), channel="alipay", idempotency_key="L")
    meter(api_key, "a", 40, 100_000)
    assert run_settler(seconds=0) == 40
    assert kinds(user) == ["low_balance", "service_stopped"]
    meter(api_key, "b", 5, 100_000)
    run_settler(seconds=0)
    assert kinds(user) == ["low_balance", "service_stopped"]
    assert summary(account)["arrears"] == cny("1.5").amount


def test_no_threshold_no_low_balance_notice(user, account, api_key):
    """R-USE-4: without a threshold only the service-stopped notice is sent, once."""
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L")
    meter(api_key, "a", 30, 100_000)
    settle_in_chunks(4)
    assert kinds(user) == ["service_stopped"]


def test_notices_of_several_accounts_in_one_chunk(account, api_key):
    """R-USE-4: one chunk settling several accounts sends each account its own notice
    (once), and none to an account that stayed above its threshold."""
    from accounts.services import create_api_key
    from tests.factories import UserFactory

    others = []
    for i in range(3):
        user = UserFactory(phone="")
        key, raw = create_api_key(user, name="k")
        key.raw = raw
        set_low_balance_threshold(user.balance_account, cny("5.00"))
        credit_lot(user.balance_account, cny("6"), channel="alipay", idempotency_key=f"L{i}")
        meter(key, f"u{i}-", 10 if i < 2 else 3, 200_000)  # 2.00 (crosses) or 0.60 (not)
        others.append(user)
    assert settle_chunk(1000) == 23
    assert [kinds(u) for u in others] == [["low_balance"], ["low_balance"], []]


def test_service_stopped_is_sent_when_only_an_expired_grant_is_left(user, account, api_key):
    """R-USE-4 / R-USE-6: a trial grant has expired (the sweep has not run yet) and usage
    received after its expiry uses up the cash: service stops (authorize refuses, the
    grant cannot pay), so the service-stopped notice is sent once, at that settlement."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import UsageEvent
    from billing.services.authorization import authorize
    from billing.services.ledger import grant_funds

    expires = timezone.now() + timedelta(hours=1)
    grant_funds(account, cny("5"), kind="trial", expires_at=expires, idempotency_key="T")
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="L")
    meter(api_key, "a", 15, 100_000)
    UsageEvent.objects.update(created_at=expires + timedelta(seconds=1))
    with mock_now(expires + timedelta(seconds=2)):
        assert settle_chunk(100) == 15
        assert authorize(resolve_api_keys([api_key.raw])[api_key.raw]).code == "arrears"
    assert summary(account)["arrears"] == cny("0.5").amount
    assert kinds(user) == ["service_stopped"]


def mock_now(at):
    from unittest import mock

    return mock.patch("django.utils.timezone.now", lambda: at)
