"""Alipay notifications that may hide money raise staff alerts; an error while crediting
answers `failure` (Alipay retries) and alerts, never a 500 (issue 13)."""

from unittest import mock

import pytest

from billing.models import Lot
from billing.services.engine import LedgerError
from ops.models import StaffAlert
from tests.topups.conftest import (  # noqa: F401 - fixtures
    _private_media,
    agreement,
    ready_user,
    signed_notification,
)
from topups.services.orders import start_topup

NOTIFY = "/topups/alipay/notify/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def order(ready_user):  # noqa: F811
    return start_topup(ready_user, "100.00", channel="alipay")


def _post(client, params):
    response = client.post(NOTIFY, params)
    assert response.status_code == 200
    return response.content.decode()


def test_a_second_payment_for_one_order_alerts_staff(client, order):
    """Issue 13 (R-TOP-1): another trade paying an already-paid order: `failure` and an
    alert naming the order and the trade, not only a log line."""
    assert _post(client, signed_notification(order)) == "success"
    second = signed_notification(order, trade_no="2026112822009999999999")
    assert _post(client, second) == "failure"
    alert = StaffAlert.objects.get(kind="alipay_other_trade")
    assert order.out_trade_no in alert.message and "2026112822009999999999" in alert.message
    assert Lot.objects.filter(account=order.account).count() == 1


def test_an_amount_mismatch_alerts_staff(client, order):
    """Issue 13: a paid amount that differs from the order: nothing credited, an alert."""
    assert _post(client, signed_notification(order, total_amount="1.00")) == "failure"
    alert = StaffAlert.objects.get(kind="alipay_amount_mismatch")
    assert alert.details["total_amount"] == "1.00"
    assert not Lot.objects.exists()


def test_an_unknown_order_alerts_staff(client, order):
    """Issue 13: a payment for an order the portal does not know raises an alert."""
    assert _post(client, signed_notification(order, out_trade_no="NOSUCHORDER")) == "failure"
    assert StaffAlert.objects.filter(kind="alipay_unknown_order").count() == 1
    # Alipay retries: the same alert is folded, not repeated
    assert _post(client, signed_notification(order, out_trade_no="NOSUCHORDER")) == "failure"
    alert = StaffAlert.objects.get(kind="alipay_unknown_order")
    assert alert.occurrences == 2


def test_a_bad_signature_raises_no_alert(client, order):
    """Issue 13: forged notifications are refused quietly (no alert flood from strangers)."""
    params = signed_notification(order)
    params["total_amount"] = "1.00"
    assert _post(client, params) == "failure"
    assert not StaffAlert.objects.exists()


def test_a_ledger_error_while_crediting_answers_failure_and_alerts(client, order):
    """Issue 13: the ledger refuses the credit: the endpoint answers `failure` (200, plain
    text) so Alipay retries, staff get an alert, the order stays unpaid; the retry then
    credits once."""
    boom = LedgerError("The ledger refused.", code="amount_too_large")
    with mock.patch("topups.services.alipay_notifications.credit_paid_topup", side_effect=boom):
        assert _post(client, signed_notification(order)) == "failure"
    assert StaffAlert.objects.filter(kind="alipay_notification_error").count() == 1
    order.refresh_from_db()
    assert order.state == "created" and order.lot_id is None
    assert _post(client, signed_notification(order)) == "success"
    order.refresh_from_db()
    assert order.state == "paid"


def test_an_unexpected_error_answers_failure_not_500(client, order):
    """Issue 13: any other exception while crediting is a `failure` answer and an alert."""
    with mock.patch(
        "topups.services.alipay_notifications.credit_paid_topup",
        side_effect=RuntimeError("disk full"),
    ):
        assert _post(client, signed_notification(order)) == "failure"
    assert StaffAlert.objects.filter(kind="alipay_notification_error").exists()
