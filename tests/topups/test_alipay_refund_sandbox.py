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
