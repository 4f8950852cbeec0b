"""Failures heal by themselves: a deadlock or serialization failure in a gateway call or
in the usage settler is retried, never a 500 (issue 13; billing/README.md "Lock order").
Since metering (issue 14) ingestion takes no locks, so the ledger's lock contention is
the settler's: it skips accounts another transaction holds."""

import threading
import time
from datetime import timedelta
from unittest import mock

import psycopg.errors
import pytest
from django.db import OperationalError, connection, transaction
from django.test import Client
from django.utils import timezone

from billing.models import UsageEvent
from billing.services import metering, settlement
from billing.services.engine import is_retryable
from billing.services.ledger import credit_lot, grant_funds, void_grant
from billing.services.reconcile import reconcile
from tests.factories import StaffFactory, UserFactory, cny, grant
from tests.ledger.http import TOKEN, post


def _deadlock():
    try:
        raise psycopg.errors.DeadlockDetected("deadlock detected")
    except psycopg.errors.DeadlockDetected as cause:
        try:
            raise OperationalError("deadlock detected") from cause
        except OperationalError as exc:
            return exc


def _victim_once(real):
    """`real`, except that its first call is chosen as a deadlock victim; and the count."""
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise _deadlock()
        return real(*args, **kwargs)

    return flaky, calls


def test_retryable_errors_are_recognised():
    """Issue 13: deadlock (40P01) and serialization failure (40001) are retried, others not."""
    assert is_retryable(_deadlock())
    assert not is_retryable(OperationalError("connection refused"))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["usage", "usage/batch"])
def test_a_deadlock_victim_is_retried_and_stores_once(client, funded, path):
    """Issue 13 / R-USE-1: the first attempt to store the event is chosen as a deadlock
    victim; the call is run again and answers 200, with exactly one event."""
    flaky, calls = _victim_once(metering._insert)
    event = {"request_id": "dl-1", "api_key": funded.raw, "model": "m", "amount": "1.5"}
    body = {"events": [event]} if path == "usage/batch" else event
    with mock.patch.object(metering, "_insert", side_effect=flaky):
        status, answer = post(client, path, body)
    assert status == 200, answer
    assert calls["n"] == 2
    assert UsageEvent.objects.filter(request_id="dl-1").count() == 1


@pytest.mark.django_db
def test_a_settler_deadlock_victim_is_retried_and_settles_once(client, funded):
    """Issue 13 / R-USE-5: a settler chunk chosen as a deadlock victim is rolled back whole
    and run again: the event is settled once and the ledger reconciles."""
    post(
        client, "usage", {"request_id": "dl-s", "api_key": funded.raw, "model": "m", "amount": "2"}
    )
    flaky, calls = _victim_once(settlement.settle_locked)

    with mock.patch.object(settlement, "settle_locked", side_effect=flaky):
        assert settlement.settle_chunk() == 1
    assert calls["n"] == 2
    charge = UsageEvent.objects.get(request_id="dl-s")
    assert charge.transaction_id and charge.cash_micro == 2_000_000
    assert reconcile().ok


@pytest.mark.django_db
def test_a_call_deadlocked_every_time_answers_503_retry(client, funded):
    """Issue 13: when every attempt is a victim the gateway answers 503 `retry` (JSON),
    stores nothing, and never a 500."""

    def always(*args, **kwargs):
        raise _deadlock()

    with mock.patch.object(metering, "_insert", side_effect=always):
        status, answer = post(
            client,
            "usage",
            {"request_id": "dl-2", "api_key": funded.raw, "model": "m", "amount": "1"},
        )
    assert (status, answer["code"]) == (503, "retry")
    assert not UsageEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_settler_passes_over_an_account_another_transaction_holds(settings):
    """Issue 13 / R-USE-5 on PostgreSQL: another transaction holds one account's row (in
    any order) while events of two accounts are pending. The settler does not wait for it
    and cannot deadlock with it: it settles the free account and skips the held one (SKIP
    LOCKED); once the holder commits, the next chunk settles the rest. Each event is settled
    once and the ledger reconciles."""
    from accounts.models import BalanceAccount
    from accounts.services import create_api_key

    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    users = [UserFactory(), UserFactory()]
    accounts = sorted((u.balance_account for u in users), key=lambda a: a.pk)
    keys = []
    for n, acc in enumerate(accounts):
        credit_lot(acc, cny("10"), channel="alipay", idempotency_key=f"f{n}")
        keys.append(create_api_key(acc.user, name="k")[1])
    events = [
        {"request_id": f"x-{i}", "api_key": k, "model": "m", "amount": "1"}
        for i, k in enumerate(keys)
    ]
    status, body = post(Client(), "usage/batch", {"events": events})
    assert status == 200 and body["accepted"] == 2
    low, high = accounts
    holding, release, outcome = threading.Event(), threading.Event(), {}

    def holder():
        try:
            with transaction.atomic():
                BalanceAccount.objects.select_for_update().get(pk=high.pk)
                holding.set()
                release.wait(20)
        finally:
            connection.close()

    def settler():
        try:
            started = time.monotonic()
            outcome["settled"] = settlement.settle_chunk()
            outcome["seconds"] = time.monotonic() - started
        finally:
            connection.close()

    held = threading.Thread(target=holder)
    held.start()
    assert holding.wait(20)
    worker = threading.Thread(target=settler)
    worker.start()
    worker.join(20)
    assert outcome["settled"] == 1 and outcome["seconds"] < 5  # did not wait on the holder
    assert UsageEvent.objects.get(account_id=low.pk).transaction_id is not None
    assert UsageEvent.objects.get(account_id=high.pk).transaction_id is None
    release.set()
    held.join(20)
    assert settlement.settle_chunk() == 1
    assert UsageEvent.objects.filter(transaction__isnull=True).count() == 0
    assert reconcile().ok


@pytest.mark.django_db(transaction=True)
def test_voiding_grants_while_batches_charge_them_never_fails(settings):
    """Issue 13 / R-USE-5 on PostgreSQL: staff void promotion grants while gateway batches
    are metered and a settler charges the same accounts (drawing on those grants). Every
    batch answers 200, every void succeeds, every event is settled once, and the ledger
    reconciles: void_grant and settlement take locks in the one order."""
    from accounts.services import create_api_key

    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    accounts, keys, grants = [], [], []
    for n in range(6):
        acc = UserFactory().balance_account
        credit_lot(acc, cny("50"), channel="alipay", idempotency_key=f"f{n}")
        for g in range(4):
            grants.append(
                grant_funds(
                    acc,
                    cny("5"),
                    kind="discount",
                    expires_at=timezone.now() + timedelta(days=5),
                    idempotency_key=f"g{n}-{g}",
                )
            )
        accounts.append(acc)
        keys.append(create_api_key(acc.user, name="k")[1])
    errors, statuses = [], []

    def voider():
        try:
            for grant in reversed(grants):  # the opposite account order to the batches
                void_grant(grant, reason="promotion withdrawn")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def charger(t):
        try:
            for b in range(10):
                events = [
                    {"request_id": f"t{t}-b{b}-{i}", "api_key": k, "model": "m", "amount": "0.3"}
                    for i, k in enumerate(keys)
                ]
                statuses.append(post(Client(), "usage/batch", {"events": events})[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    stop = threading.Event()
    threads = [
        threading.Thread(target=voider),
        threading.Thread(target=_settler, args=(stop, errors)),
    ] + [threading.Thread(target=charger, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads[2:] + threads[:1]:
        t.join(120)
    stop.set()
    threads[1].join(60)
    settlement.run_settler(seconds=0)
    assert not errors, errors
    assert statuses == [200] * 20
    assert UsageEvent.objects.count() == 20 * 6
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    assert reconcile().ok


@pytest.mark.django_db(transaction=True)
def test_ending_a_promotion_while_batches_charge_its_grants(settings):
    """Issue 13 on PostgreSQL (the drill's deadlock): staff end a promotion and void its
    benefits in small batches while two gateway batches charge the same accounts, events
    in the opposite account order, and a settler charges them. No 500, no error, every
    event settled once, every benefit voided or spent, the ledger reconciles."""
    from accounts.services import create_api_key
    from tests.topups.conftest import accept, make_agreement, verify
    from tests.topups.test_promotions import pay, promo
    from topups.models import PromotionRedemption
    from topups.services.promotions import end_promotion

    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    finance = grant(StaffFactory(), "topups.confirm_remittance", "topups.resolve_review")
    ender = grant(StaffFactory(), "topups.end_promotion")
    agreement = make_agreement()
    p = promo()
    keys = []
    for _ in range(6):
        user = UserFactory()
        verify(user)
        accept(user, agreement)
        pay(user, finance)
        keys.append(create_api_key(user, name="k")[1])
    assert PromotionRedemption.objects.count() == 6
    errors, statuses = [], []

    def ender_thread():
        try:
            end_promotion(p, actor=ender, reason="campaign over", void_unused=True, batch_size=2)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def charger(t):
        try:
            for b in range(8):
                order = keys if t % 2 else list(reversed(keys))
                events = [
                    {"request_id": f"p{t}-{b}-{i}", "api_key": k, "model": "m", "amount": "0.4"}
                    for i, k in enumerate(order)
                ]
                statuses.append(post(Client(), "usage/batch", {"events": events})[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    stop = threading.Event()
    threads = [
        threading.Thread(target=ender_thread),
        threading.Thread(target=_settler, args=(stop, errors)),
    ] + [threading.Thread(target=charger, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads[2:] + threads[:1]:
        t.join(180)
    stop.set()
    threads[1].join(60)
    settlement.run_settler(seconds=0)
    assert not errors, errors
    assert statuses == [200] * 16
    assert UsageEvent.objects.count() == 16 * 6
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    assert PromotionRedemption.objects.filter(voided_at__isnull=True).count() == 0
    assert reconcile().ok


def _settler(stop, errors):
    """A continuous settler in a thread until `stop` is set."""
    try:
        while not stop.is_set():
            if not settlement.settle_chunk(limit=50):
                time.sleep(0.01)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
    finally:
        connection.close()
