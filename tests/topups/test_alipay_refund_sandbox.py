"""The sandbox's refund switches page for developers (R-REF-5, R-REF-6): staff only,
sandbox only; what it sets is what the sandbox gateway then answers."""

import pytest

from tests.factories import StaffFactory
from topups import sandbox

PAGE = "/topups/sandbox/refunds/"


@pytest.fixture
def trade():
    out_trade_no = "T20261128SANDBOX1"
    yield out_trade_no
    sandbox.reset(out_trade_no)


@pytest.mark.django_db
def test_staff_set_and_reset_switches(client, trade):
    """R-REF-6: a developer makes a trade refuse (finished) and the next call time out,
    sees it on the page, and resets the trade."""
    client.force_login(StaffFactory())
    response = client.post(
        PAGE, {"out_trade_no": trade, "refusal": "finished", "next": "timeout", "seconds": "5"}
    )
    assert response.status_code == 302
    assert sandbox.trade_refusal(trade) == "finished"
    assert sandbox.next_failure(trade) == {"mode": "timeout", "seconds": 5.0}
    page = client.get(PAGE, {"out_trade_no": trade}).content.decode()
    assert "finished" in page and "timeout" in page and "No refunds yet." in page
    client.post(PAGE, {"out_trade_no": trade, "action": "reset"})
    assert sandbox.trade_refusal(trade) is None and sandbox.next_failure(trade) is None


@pytest.mark.django_db
def test_page_is_staff_only_and_sandbox_only(client, user, settings, trade):
    """The switches page is 404 for non-staff, and for everyone without ALIPAY_SANDBOX."""
    assert client.get(PAGE).status_code == 302  # anonymous: to the login page
    client.force_login(user)
    assert client.get(PAGE).status_code == 404
    assert client.post(PAGE, {"out_trade_no": trade, "refusal": "closed"}).status_code == 404
    assert sandbox.trade_refusal(trade) is None
    client.force_login(StaffFactory())
    settings.ALIPAY_SANDBOX = False
    assert client.get(PAGE).status_code == 404


@pytest.mark.django_db
def test_gateway_openapi_is_off_without_the_sandbox(client, settings):
    """The sandbox gateway (refund methods included) does not exist when ALIPAY_SANDBOX is off."""
    settings.ALIPAY_SANDBOX = False
    response = client.post("/topups/sandbox/gateway/", {"method": "alipay.trade.refund"})
    assert response.status_code == 404


def test_switches_refuse_unknown_names(trade):
    """Only the documented refusals and failures can be set."""
    with pytest.raises(ValueError):
        sandbox.set_trade_refusal(trade, "bogus")
    with pytest.raises(ValueError):
        sandbox.fail_next_call(trade, "bogus")


@pytest.mark.django_db
def test_refund_calls_need_no_csrf_token_but_the_cashier_form_keeps_its_check(ready_user):
    """The gateway is CSRF-exempt for server-to-server refund calls (as Alipay's is);
    the page-pay cashier's form POST is still CSRF-checked."""
    import json

    from django.test import Client

    from topups import alipay
    from topups.alipay_refunds import REFUND
    from topups.services.orders import start_topup

    client = Client(enforce_csrf_checks=True)
    order = start_topup(ready_user, "10.00", channel="alipay")
    params = alipay.page_pay_params(
        order, notify_url="http://testserver/topups/alipay/notify/", return_url="http://x/r"
    )
    assert client.post("/topups/sandbox/gateway/", {**params, "action": "pay"}).status_code == 403

    refund = alipay.openapi_params(
        REFUND, {"out_trade_no": "T20260101NOSUCH", "refund_amount": "1.00", "out_request_no": "R"}
    )
    response = client.post("/topups/sandbox/gateway/", refund)
    assert response.status_code == 200
    node = json.loads(response.content)["alipay_trade_refund_response"]
    assert node["sub_code"] == "ACQ.TRADE_NOT_EXIST"
