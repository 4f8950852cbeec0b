"""Alipay refunds over real HTTP against the in-portal sandbox (R-REF-5, R-REF-6).

The client (topups/alipay_refunds.py) signs each call with the app key and posts
it with urllib to the sandbox gateway served by pytest-django's live_server; the
sandbox verifies the request, answers as Alipay does and signs its answer with the
development Alipay key, which the client verifies. Failure modes are switched per
trade with topups.sandbox.set_trade_refusal / fail_next_call.
"""

import json
import socket
import urllib.parse
import urllib.request
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.factories import cny
from topups import alipay, sandbox
from topups.alipay_refunds import (
    REFUND,
    AlipayUnavailable,
    query_refund,
    request_refund,
    will_never_refund,
)
from topups.services.alipay_notifications import handle_alipay_notification
from topups.services.orders import start_topup

from .conftest import signed_notification

GATEWAY = "/topups/sandbox/gateway/"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal(live_server, settings):
    """The client reaches the relative sandbox gateway through PORTAL_BASE_URL."""
    settings.PORTAL_BASE_URL = live_server.url
    assert settings.ALIPAY_GATEWAY == GATEWAY
    return live_server.url


@pytest.fixture
def paid(ready_user):
    """A top-up paid through Alipay (a signed notification through the real service)."""
    order = start_topup(ready_user, "100.00", channel="alipay")
    assert handle_alipay_notification(signed_notification(order)).ok
    order.refresh_from_db()
    assert order.state == "paid" and order.trade_no
    yield order
    sandbox.reset(order.out_trade_no)


def refund(order, amount="40.00", request_no="RF-1", **kwargs):
    return request_refund(
        out_trade_no=order.out_trade_no,
        trade_no=order.trade_no,
        amount=cny(amount),
        out_request_no=request_no,
        reason="用户申请退款 (user asked)",
        **kwargs,
    )


def query(order, request_no="RF-1", **kwargs):
    return query_refund(
        out_trade_no=order.out_trade_no,
        trade_no=order.trade_no,
        out_request_no=request_no,
        **kwargs,
    )


def test_refund_succeeds_with_fund_change_y(portal, paid):
    """R-REF-5: a signed alipay.trade.refund moves the money: code 10000, fund_change Y."""
    answer = refund(paid, "40.00")
    assert answer.ok and answer.fund_change
    assert answer.code == "10000" and answer.sub_code == ""
    assert answer.refund_amount == Decimal("40.00")
    assert answer.raw["out_trade_no"] == paid.out_trade_no
    assert answer.raw["trade_no"] == paid.trade_no
    assert not will_never_refund(answer)
    assert sandbox.refunds_of(paid.out_trade_no)["RF-1"]["amount"] == "40.00"


def test_retry_with_same_request_no_answers_n_and_query_confirms(portal, paid):
    """R-REF-5: a replay of one out_request_no refunds nothing more (fund_change N); the
    refund query confirms the money moved; an unknown request number is not refunded."""
    assert refund(paid, "40.00").fund_change
    again = refund(paid, "40.00")
    assert again.ok and not again.fund_change
    assert again.refund_amount == Decimal("40.00")  # the trade's total refunded, unchanged
    assert len(sandbox.refunds_of(paid.out_trade_no)) == 1

    confirmed = query(paid, "RF-1")
    assert confirmed.ok and confirmed.fund_change
    assert confirmed.refund_amount == Decimal("40.00")
    assert confirmed.raw["refund_status"] == "REFUND_SUCCESS"

    never = query(paid, "RF-NEVER-SENT")
    assert never.ok and not never.fund_change and never.refund_amount is None


def test_replay_with_another_amount_is_refused(portal, paid):
    """R-REF-5: one out_request_no is one refund: reusing it for another amount is refused."""
    assert refund(paid, "40.00").fund_change
    answer = refund(paid, "41.00")
    assert not answer.ok and answer.sub_code == "ACQ.DISCORDANT_REPEAT_REQUEST"
    assert will_never_refund(answer)


@pytest.mark.parametrize(
    ("refusal", "sub_code"),
    [
        ("finished", "ACQ.TRADE_HAS_FINISHED"),
        ("closed", "ACQ.TRADE_HAS_CLOSE"),
        ("window", "ACQ.TRADE_STATUS_ERROR"),
    ],
)
def test_finished_closed_or_expired_trade_is_refused_for_good(portal, paid, refusal, sub_code):
    """R-REF-6: a trade Alipay will no longer refund answers a definite refusal;
    will_never_refund says so (finance pays by bank transfer), and nothing moved."""
    sandbox.set_trade_refusal(paid.out_trade_no, refusal)
    answer = refund(paid, "40.00")
    assert not answer.ok and not answer.fund_change
    assert answer.code == "40004" and answer.sub_code == sub_code and answer.message
    assert will_never_refund(answer)
    assert sandbox.refunds_of(paid.out_trade_no) == {}
    assert not query(paid, "RF-1").fund_change


def test_amount_above_refundable_and_unknown_trade_are_refused(portal, paid):
    """R-REF-5, R-REF-6: more than is left refundable on the trade, or a trade Alipay
    does not know, is refused for good."""
    assert refund(paid, "60.00", "RF-1").fund_change
    above = refund(paid, "40.01", "RF-2")
    assert not above.ok and above.sub_code == "ACQ.REASON_TRADE_REFUND_FEE_ERR"
    assert will_never_refund(above)
    assert refund(paid, "40.00", "RF-2").fund_change  # exactly what is left is fine

    unknown = request_refund(
        out_trade_no="T20260101NOSUCH",
        trade_no="",
        amount=cny("1.00"),
        out_request_no="RF-X",
        reason="",
    )
    assert not unknown.ok and unknown.sub_code == "ACQ.TRADE_NOT_EXIST"
    assert will_never_refund(unknown)


@pytest.mark.parametrize("mode", ["system_error", "unknown_error"])
def test_system_error_is_retryable_and_the_retry_succeeds(portal, paid, mode):
    """R-REF-6: ACQ.SYSTEM_ERROR / 20000 are not final; the retry with the same
    out_request_no refunds once."""
    sandbox.fail_next_call(paid.out_trade_no, mode)
    failed = refund(paid)
    assert not failed.ok and not failed.fund_change
    assert failed.code in ("40004", "20000")
    assert not will_never_refund(failed)
    assert sandbox.refunds_of(paid.out_trade_no) == {}
    assert refund(paid).fund_change


def test_timeout_then_retry_with_same_request_no_refunds_once(portal, paid):
    """R-REF-5, R-REF-6: Alipay refunds but the answer comes too late: AlipayUnavailable
    (outcome unknown); the retry with the same out_request_no answers fund_change N and
    the query confirms the money moved — once."""
    sandbox.fail_next_call(paid.out_trade_no, "timeout", seconds=1.5)
    with pytest.raises(AlipayUnavailable):
        refund(paid, timeout=0.3)
    retry = refund(paid)
    assert retry.ok and not retry.fund_change
    assert query(paid).fund_change
    assert list(sandbox.refunds_of(paid.out_trade_no)) == ["RF-1"]


def test_connection_failure_raises_unavailable(paid):
    """R-REF-6: nothing listening at the gateway: AlipayUnavailable, not an answer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AlipayUnavailable):
        refund(paid, gateway=f"http://127.0.0.1:{port}/gateway.do", timeout=2)


@pytest.mark.parametrize("mode", ["http_error", "not_json", "slow"])
def test_gateway_errors_raise_unavailable(portal, paid, mode):
    """R-REF-6: an HTTP error, a page that is not JSON, or no answer in time: unknown."""
    sandbox.fail_next_call(paid.out_trade_no, mode, seconds=1.0)
    with pytest.raises(AlipayUnavailable):
        refund(paid, timeout=0.3)
    assert sandbox.refunds_of(paid.out_trade_no) == {}


@pytest.mark.parametrize("mode", ["forged", "unsigned"])
@pytest.mark.parametrize("call", [refund, query])
def test_forged_or_unsigned_answer_raises_unavailable(portal, paid, mode, call):
    """R-REF-5: a "success" whose signature does not verify against ALIPAY_PUBLIC_KEY
    (signed with another key, or not at all) is never taken as money moved."""
    sandbox.fail_next_call(paid.out_trade_no, mode)
    with pytest.raises(AlipayUnavailable) as caught:
        call(paid)
    assert caught.value.raw["fund_change"] == "Y"  # what the forger claimed, for the record
    assert sandbox.refunds_of(paid.out_trade_no) == {}
    assert not query(paid).fund_change


def test_gateway_keyword_reaches_the_sandbox_without_portal_base_url(live_server, paid):
    """R-REF-5: an explicit absolute gateway= is used as is."""
    answer = refund(paid, gateway=f"{live_server.url}{GATEWAY}")
    assert answer.fund_change


def _post_raw(url, params):
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        return resp.status, resp.read().decode()


def _verified(body, key="alipay_trade_refund_response"):
    text = alipay.response_node_text(body, key)
    document = json.loads(body)
    assert alipay.verify_text(text, document["sign"], alipay.alipay_public_key())
    return document[key]


def test_forged_or_altered_request_is_refused_by_the_sandbox(portal, paid):
    """R-REF-5: the sandbox verifies the request's RSA2 signature with the app public key:
    a request signed with another key, or altered after signing, gets Alipay's 40002
    isv.invalid-signature (itself signed) and refunds nothing."""
    url = f"{portal}{GATEWAY}"
    biz = {
        "out_trade_no": paid.out_trade_no,
        "refund_amount": "100.00",
        "out_request_no": "RF-FORGED",
    }
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    status, body = _post_raw(url, alipay.openapi_params(REFUND, biz, private_key=forger))
    node = _verified(body)
    assert status == 200
    assert node["code"] == "40002" and node["sub_code"] == "isv.invalid-signature"

    genuine = alipay.openapi_params(REFUND, {**biz, "refund_amount": "1.00"})
    altered = {**genuine, "biz_content": genuine["biz_content"].replace("1.00", "100.00")}
    node = _verified(_post_raw(url, altered)[1])
    assert node["sub_code"] == "isv.invalid-signature"
    assert sandbox.refunds_of(paid.out_trade_no) == {}

    node = _verified(_post_raw(url, genuine)[1])  # the genuine request still works
    assert node["code"] == "10000" and node["fund_change"] == "Y"


def test_three_decimal_amount_is_refused_before_sending(portal, paid, monkeypatch):
    """R-REF-5: amounts are whole fen, sent as 2-decimal strings: 3 decimals (or not CNY,
    or not positive) raise ValueError and nothing reaches the gateway."""
    from djmoney.money import Money

    def no_http(*args, **kwargs):
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr("topups.alipay_refunds.urllib.request.urlopen", no_http)
    for bad in (cny("10.005"), cny("0"), cny("-1.00"), Money("10.00", "USD")):
        with pytest.raises(ValueError):
            request_refund(
                out_trade_no=paid.out_trade_no,
                trade_no=paid.trade_no,
                amount=bad,
                out_request_no="RF-1",
                reason="",
            )
    with pytest.raises(ValueError):
        request_refund(
            out_trade_no=paid.out_trade_no,
            trade_no=paid.trade_no,
            amount=Decimal("10.00"),
            out_request_no="RF-1",
            reason="",
        )
    assert sandbox.refunds_of(paid.out_trade_no) == {}
