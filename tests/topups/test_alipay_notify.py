"""Alipay asynchronous notifications (R-TOP-1, R-TOP-2, R-TOP-3, R-LED-5).

Every bad notification answers `failure` and changes nothing: no lot, no
state change, no balance.
"""

import threading
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection

from billing.models import Lot
from notices.models import Notice
from tests.factories import cny
from topups.services.alipay_notifications import handle_alipay_notification
from topups.services.orders import start_topup

from .conftest import balance, signed_notification

NOTIFY = "/topups/alipay/notify/"


@pytest.fixture
def order(ready_user):
    return start_topup(ready_user, "100.00", channel="alipay")


def _post(client, params):
    response = client.post(NOTIFY, params)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def _unchanged(order):
    order.refresh_from_db()
    assert order.state == "created"
    assert order.lot_id is None
    assert not Lot.objects.filter(account=order.account).exists()
    assert balance(order.account.user)["cash"] == cny(0)


@pytest.mark.django_db
def test_paid_notification_credits_the_lot_at_once(client, order):
    """R-TOP-1, R-TOP-2: TRADE_SUCCESS credits the lot in the same transaction; notice sent."""
    assert _post(client, signed_notification(order)) == "success"
    order.refresh_from_db()
    assert order.state == "paid"
    assert order.lot.amount == cny("100.00")
    assert order.lot.idempotency_key == f"topup:{order.out_trade_no}"
    assert order.payer_account == "buy***@example.com"
    assert balance(order.account.user)["cash"] == cny("100.00")
    assert Notice.objects.filter(user=order.account.user, kind="topup_credited").count() == 1


@pytest.mark.django_db
def test_replay_and_trade_finished_credit_once(client, order):
    """R-TOP-1, R-LED-5: a replayed TRADE_SUCCESS and a later TRADE_FINISHED credit nothing more."""
    params = signed_notification(order)
    assert _post(client, params) == "success"
    assert _post(client, params) == "success"
    finished = signed_notification(order, trade_status="TRADE_FINISHED")
    assert _post(client, finished) == "success"
    assert Lot.objects.filter(account=order.account).count() == 1
    assert balance(order.account.user)["cash"] == cny("100.00")
    order.refresh_from_db()
    assert order.channel_status == "TRADE_FINISHED"


@pytest.mark.django_db
def test_forged_signature_is_refused(client, order):
    """R-TOP-1: a notification signed with another key is refused and changes nothing."""
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _post(client, signed_notification(order, key=forger)) == "failure"
    _unchanged(order)


@pytest.mark.django_db
def test_altered_signed_field_is_refused(client, order):
    """R-TOP-1: changing a signed field after signing breaks the signature."""
    params = signed_notification(order)
    params["total_amount"] = "1000.00"
    assert _post(client, params) == "failure"
    params = signed_notification(order)
    del params["sign"]
    assert _post(client, params) == "failure"
    _unchanged(order)


@pytest.mark.django_db
def test_amount_mismatch_is_refused(client, order):
    """R-TOP-1: a validly signed notification for another amount is refused."""
    assert _post(client, signed_notification(order, total_amount="99.99")) == "failure"
    _unchanged(order)


@pytest.mark.django_db
def test_wrong_app_id_and_seller_are_refused(client, order):
    """R-TOP-1: app id and seller must be ours."""
    assert _post(client, signed_notification(order, app_id="2021999999999999")) == "failure"
    assert _post(client, signed_notification(order, seller_id="2088999999999999")) == "failure"
    _unchanged(order)


@pytest.mark.django_db
def test_unknown_out_trade_no_is_refused(client, order):
    """R-TOP-1: a notification for an order we never created is refused."""
    assert _post(client, signed_notification(order, out_trade_no="T20260101NOSUCH")) == "failure"
    _unchanged(order)


@pytest.mark.django_db
def test_non_paid_status_credits_nothing(client, order):
    """R-TOP-1: only TRADE_SUCCESS / TRADE_FINISHED mean paid."""
    assert _post(client, signed_notification(order, trade_status="WAIT_BUYER_PAY")) == "success"
    assert _post(client, signed_notification(order, trade_status="TRADE_CLOSED")) == "success"
    _unchanged(order)


@pytest.mark.django_db
@pytest.mark.parametrize("closing", ["cancel", "expire"])
def test_notification_for_cancelled_or_expired_order_is_refused(client, order, closing):
    """R-TOP-1: a closed order is never credited by a late notification."""
    from core.workflow import apply_transition

    apply_transition(order, closing, actor=None, reason="test")
    assert _post(client, signed_notification(order)) == "failure"
    order.refresh_from_db()
    assert order.state in ("cancelled", "expired")
    assert not Lot.objects.filter(account=order.account).exists()
    from ops.models import StaffAlert

    assert StaffAlert.objects.filter(kind="topup_paid_after_close").count() == 1


@pytest.mark.django_db
def test_bank_order_cannot_be_paid_by_alipay_notification(client, ready_user):
    """R-TOP-1: out_trade_no of a bank top-up is unknown to the Alipay channel."""
    bank = start_topup(ready_user, "100.00", channel="bank")
    assert _post(client, signed_notification(bank)) == "failure"
    bank.refresh_from_db()
    assert bank.state == "created"


@pytest.mark.django_db
def test_third_party_payer_marks_the_lot(client, order):
    """R-TOP-3: a payer name that is not the verified holder's marks the lot third-party."""
    assert _post(client, signed_notification(order, buyer_user_name="Li Si")) == "success"
    order.refresh_from_db()
    assert order.third_party and order.lot.third_party
    assert order.lot.payer_name == "Li Si"


@pytest.mark.django_db
def test_holder_paying_is_not_third_party(client, order):
    """R-TOP-3: the holder's own name (spacing/case aside) is not third-party."""
    assert _post(client, signed_notification(order, buyer_user_name="zhang  san")) == "success"
    order.refresh_from_db()
    assert not order.lot.third_party


@pytest.mark.django_db
def test_get_is_not_allowed(client):
    """The notify endpoint only takes Alipay's POST."""
    assert client.get(NOTIFY).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_notifications_credit_once(ready_user):
    """R-TOP-1, R-LED-5, R-LED-6: 8 identical notifications racing credit exactly once."""
    order = start_topup(ready_user, "100.00", channel="alipay")
    params = signed_notification(order)
    barrier = threading.Barrier(8)
    answers = []

    def deliver():
        try:
            barrier.wait()
            answers.append(handle_alipay_notification(dict(params)).answer)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["success"] * 8
    assert Lot.objects.filter(account=order.account).count() == 1
    assert balance(ready_user)["cash"].amount == Decimal("100.00")


@pytest.mark.django_db(transaction=True)
def test_arrears_are_paid_first_from_the_top_up(client, ready_user, account):
    """R-TOP-1 (with R-USE-3): a top-up pays arrears first; the postings show it."""
    from billing.models import Posting
    from billing.services.settlement import charge_usage

    charge_usage(account, cny("3.50"), request_id="req-arrears-1", model="m-1")
    assert balance(ready_user)["arrears"] == cny("3.50")
    order = start_topup(ready_user, "100.00", channel="alipay")
    assert _post(client, signed_notification(order)) == "success"
    order.refresh_from_db()
    summary = balance(ready_user)
    assert summary["arrears"] == cny(0)
    assert summary["cash"] == cny("96.50")
    assert order.lot.remaining == cny("96.50")
    assert Posting.objects.filter(lot=order.lot, bucket="arrears").exists()
