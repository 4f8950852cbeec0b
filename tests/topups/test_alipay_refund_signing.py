"""Signing of refund requests and verification of Alipay's answers, without HTTP
(R-REF-5, R-REF-6). The HTTP round trips are in test_alipay_refund.py."""

import datetime
import io
import json
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured

from tests.factories import cny
from topups import alipay, alipay_refunds
from topups.alipay_refunds import (
    REFUND,
    REFUND_QUERY,
    AlipayUnavailable,
    RefundAnswer,
    query_refund,
    request_refund,
    will_never_refund,
)
from topups.sandbox import sandbox_alipay_private_key

GATEWAY = "https://openapi.example/gateway.do"


def test_refund_request_is_signed_with_the_app_key():
    """R-REF-5: common parameters as Alipay specifies (RSA2, utf-8, version 1.0, Beijing
    time), biz_content JSON with the amount as a 2-decimal string; the signature covers
    every parameter but `sign` and verifies with the app public key."""
    moment = datetime.datetime(2026, 11, 28, 16, 30, 5, tzinfo=datetime.UTC)
    biz = {"out_trade_no": "T1", "refund_amount": "12.30", "out_request_no": "RF-1"}
    params = alipay.openapi_params(REFUND, biz, now=moment)
    assert params["method"] == "alipay.trade.refund"
    assert params["charset"] == "utf-8" and params["sign_type"] == "RSA2"
    assert params["version"] == "1.0" and params["format"] == "JSON"
    assert params["timestamp"] == "2026-11-29 00:30:05"  # UTC+8
    assert json.loads(params["biz_content"])["refund_amount"] == "12.30"
    public = alipay.app_private_key().public_key()
    assert alipay.verify(params, public, exclude=("sign",))
    altered = {**params, "biz_content": params["biz_content"].replace("12.30", "99.00")}
    assert not alipay.verify(altered, public, exclude=("sign",))


def test_response_node_text_is_the_exact_text():
    """R-REF-5: the signed content is the node's JSON text verbatim (order, spacing,
    escapes kept), even when the key also appears inside a string value."""
    node = '{"code":"10000","sub_msg":"\\"alipay_trade_refund_response\\":","fund_change":"Y"}'
    body = f'{{"alipay_trade_refund_response":  {node},"sign":"x"}}'
    assert alipay.response_node_text(body, "alipay_trade_refund_response") == node
    assert alipay.response_node_text(body, "other_response") is None
    assert alipay.response_node_text("not json", "x") is None


def test_response_signature_verification():
    """R-REF-5: an answer verifies over its node's text with the Alipay public key; a
    changed byte, another key, or a `\\/` Alipay's SDKs tolerate are handled."""
    key = sandbox_alipay_private_key()
    body = alipay.signed_response_body(
        "alipay_trade_refund_response", {"code": "10000", "fund_change": "Y"}, key
    )
    text = alipay.response_node_text(body, "alipay_trade_refund_response")
    signature = json.loads(body)["sign"]
    assert alipay.verify_text(text, signature, key.public_key())
    assert not alipay.verify_text(text.replace('"Y"', '"N"'), signature, key.public_key())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not alipay.verify_text(text, signature, other.public_key())
    assert not alipay.verify_text(text, "", key.public_key())
    assert not alipay.verify_text(text, "%%%", key.public_key())
    slash = '{"msg":"a/b"}'
    assert alipay.verify_text(
        slash.replace("/", "\\/"), alipay.sign_text(slash, key), key.public_key()
    )


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def answer_with(monkeypatch):
    """Replace HTTP with a canned body; records what would have been posted."""
    sent = []

    def install(node, *, method=REFUND, key=None, body=None):
        if body is None:
            body = alipay.signed_response_body(
                alipay.response_key(method), node, key or sandbox_alipay_private_key()
            )

        def urlopen(request, timeout):
            url, _, query = request.full_url.partition("?")
            form = dict(parse_qsl(request.data.decode()))
            sent.append((url, {**dict(parse_qsl(query)), **form}, timeout, form))
            return _Response(body.encode())

        monkeypatch.setattr(alipay_refunds.urllib.request, "urlopen", urlopen)
        return sent

    return install


def _refund(**kwargs):
    return request_refund(
        out_trade_no="T1",
        trade_no="2026T1",
        amount=cny("12.30"),
        out_request_no="RF-1",
        reason="user asked",
        gateway=GATEWAY,
        **kwargs,
    )


def _query():
    return query_refund(
        out_trade_no="T1", trade_no="2026T1", out_request_no="RF-1", gateway=GATEWAY
    )


def test_client_posts_a_signed_request_and_reads_the_verified_answer(answer_with, settings):
    """R-REF-5: the posted form verifies with the app key; fund_change Y and refund_fee
    are read from the verified node; the timeout is passed on."""
    settings.ALIPAY_HTTP_TIMEOUT = 7
    sent = answer_with(
        {"code": "10000", "msg": "Success", "fund_change": "Y", "refund_fee": "12.30"}
    )
    answer = _refund()
    assert answer == RefundAnswer(
        ok=True,
        fund_change=True,
        code="10000",
        sub_code="",
        message="Success",
        refund_amount=Decimal("12.30"),
        raw={"code": "10000", "msg": "Success", "fund_change": "Y", "refund_fee": "12.30"},
    )
    url, params, timeout, form = sent[0]
    assert url == GATEWAY and timeout == 7
    assert list(form) == ["biz_content"]  # common parameters in the query, as Alipay's SDKs
    assert alipay.verify(params, alipay.app_private_key().public_key(), exclude=("sign",))
    assert json.loads(params["biz_content"]) == {
        "out_trade_no": "T1",
        "trade_no": "2026T1",
        "refund_amount": "12.30",
        "out_request_no": "RF-1",
        "refund_reason": "user asked",
    }


def test_refusals_final_and_retryable(answer_with):
    """R-REF-6: definite refusals (finished, closed, past the window) are final; system
    errors are retried."""
    answer_with(
        {
            "code": "40004",
            "msg": "Business Failed",
            "sub_code": "ACQ.TRADE_HAS_FINISHED",
            "sub_msg": "交易已完结",
        }
    )
    finished = _refund()
    assert not finished.ok and finished.message == "交易已完结"
    assert will_never_refund(finished)
    answer_with({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR"})
    assert not will_never_refund(_refund())
    answer_with({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.x"})
    assert not will_never_refund(_refund())
    answer_with({"code": "10000", "msg": "Success", "fund_change": "N"})
    replay = _refund()
    assert replay.ok and not replay.fund_change and not will_never_refund(replay)


@pytest.mark.parametrize(
    ("node", "moved", "amount"),
    [
        ({"refund_status": "REFUND_SUCCESS", "refund_amount": "12.30"}, True, Decimal("12.30")),
        ({"refund_amount": 12.3}, True, Decimal("12.3")),  # older answers: no refund_status
        ({}, False, None),  # nothing found: not refunded (retry with the same number)
    ],
)
def test_query_success_means_refund_status_or_refund_amount(answer_with, node, moved, amount):
    """R-REF-5: code 10000 of a query only means it ran; REFUND_SUCCESS (or, for older
    answers, a refund_amount) means the money moved."""
    answer_with(
        {"code": "10000", "msg": "Success", "out_request_no": "RF-1", **node}, method=REFUND_QUERY
    )
    answer = _query()
    assert answer.ok and answer.fund_change is moved and answer.refund_amount == amount


@pytest.mark.parametrize(
    "body",
    [
        "<html>busy</html>",
        '{"something_else":{}}',
        '{"alipay_trade_refund_response":{"code":"10000","fund_change":"Y"}}',
        '{"alipay_trade_refund_response":{"code":"10000","fund_change":"Y"},"sign":"bm8="}',
    ],
)
def test_untrusted_answers_raise_unavailable(answer_with, body):
    """R-REF-6: not JSON, no response node, no signature, a bad signature: unknown."""
    answer_with(None, body=body)
    with pytest.raises(AlipayUnavailable):
        _refund()


def test_answer_signed_with_another_key_raises_unavailable(answer_with):
    """R-REF-5: a forged success (signed, but not by Alipay's key) is not an answer."""
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer_with({"code": "10000", "fund_change": "Y"}, key=forger)
    with pytest.raises(AlipayUnavailable):
        _refund()


def test_answer_for_another_trade_raises_unavailable(answer_with):
    """R-REF-5: a signed answer naming another trade is not ours to act on."""
    answer_with({"code": "10000", "fund_change": "Y", "out_trade_no": "T2"})
    with pytest.raises(AlipayUnavailable):
        _refund()


def test_amounts_are_two_decimal_strings():
    """R-REF-5: Money in CNY, whole fen, positive; formatted with exactly 2 decimals."""
    assert alipay_refunds.amount_text(cny("12.3")) == "12.30"
    assert alipay_refunds.amount_text(cny("12.300")) == "12.30"
    for bad in (cny("12.301"), cny("0.00"), cny("-1"), Decimal("1.00"), "1.00"):
        with pytest.raises(ValueError):
            alipay_refunds.amount_text(bad)


def test_gateway_url(settings):
    """R-REF-5: a relative gateway (the sandbox) is joined to PORTAL_BASE_URL; without it
    (or with a non-http URL) the client refuses before sending."""
    settings.ALIPAY_GATEWAY = "/topups/sandbox/gateway/"
    settings.PORTAL_BASE_URL = "http://127.0.0.1:8000/"
    assert alipay_refunds.gateway_url() == "http://127.0.0.1:8000/topups/sandbox/gateway/"
    assert alipay_refunds.gateway_url(GATEWAY) == GATEWAY
    settings.PORTAL_BASE_URL = ""
    with pytest.raises(ImproperlyConfigured):
        alipay_refunds.gateway_url()
    with pytest.raises(ImproperlyConfigured):
        alipay_refunds.gateway_url("file:///etc/passwd")
