"""The Alipay refund client (R-REF-5, R-REF-6): `alipay.trade.refund` and
`alipay.trade.fastpay.refund.query`, signed and verified by topups/alipay.py.

The Alipay payout loop (topups/alipay_payouts.py, run by refund and dispute payouts)
calls `request_refund` and `query_refund`; this module knows no model. What an answer
means:

- `RefundAnswer.fund_change` True: the money moved. For a refund, Alipay said
  `fund_change = Y`; for a query, `refund_status = REFUND_SUCCESS` (or, as older
  answers do, the query returned the refund's `refund_amount`).
- `ok` True with `fund_change` False: Alipay took the request but did not say the
  money moved this time (`fund_change = N`, e.g. a replay of an `out_request_no`
  already refunded, or a query that found no refund): confirm with `query_refund`
  before counting it as paid, and retry with the SAME `out_request_no`.
- `ok` False: Alipay refused (`code`, `sub_code`, `message`). `will_never_refund`
  tells a definite refusal (finished, closed, past the refund window, unknown
  trade, an amount Alipay will never accept) from a refusal worth retrying
  (ACQ.SYSTEM_ERROR, 20000 unknown errors, the merchant's balance short …).
- `AlipayUnavailable`: no trustworthy answer (timeout, connection error, HTTP
  error, not JSON, no response node, a signature that does not verify against
  ALIPAY_PUBLIC_KEY): the outcome is unknown; query or retry with the same
  `out_request_no`.

Arguments that can never make a valid request (3-decimal amounts, not CNY, no
trade number, no request number) raise ValueError before anything is sent.
Missing keys or a gateway that is not absolute raise ImproperlyConfigured (nothing
sent either).
"""

import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from djmoney.money import Money

from . import alipay

logger = logging.getLogger(__name__)

REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
SUCCESS_CODE = "10000"
DEFAULT_TIMEOUT = 15  # seconds; settings.ALIPAY_HTTP_TIMEOUT overrides
FEN = Decimal("0.01")

# Refusals after which Alipay will not refund this trade (or this request, as sent)
# however often it is retried: finance pays by bank transfer instead (R-REF-6).
NEVER_REFUND = frozenset(
    {
        "ACQ.TRADE_HAS_FINISHED",  # trade finished: no refunds any more
        "ACQ.TRADE_STATUS_ERROR",  # status forbids refunds, e.g. past the refund window
        "ACQ.TRADE_HAS_CLOSE",  # trade closed
        "ACQ.TRADE_NOT_EXIST",  # Alipay knows no such trade
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",  # amount ≠ total without a request number
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",  # amount above what is left refundable
        "ACQ.DISCORDANT_REPEAT_REQUEST",  # the request number was used with other data
        "ACQ.BUYER_ERROR",  # the buyer's account cannot take the money back
        "ACQ.REASON_TRADE_BEEN_FREEZEN",  # trade frozen by Alipay
    }
)


class AlipayUnavailable(Exception):
    """No trustworthy answer from Alipay: the outcome of the call is unknown."""

    def __init__(self, message, *, raw=None):
        super().__init__(message)
        self.raw = raw


@dataclass
class RefundAnswer:
    ok: bool  # Alipay answered code 10000
    fund_change: bool  # the money moved (see the module docstring)
    code: str
    sub_code: str
    message: str
    refund_amount: Decimal | None
    raw: dict = field(default_factory=dict)  # the verified response node, as Alipay sent it


def will_never_refund(answer):
    """True for a definite business refusal: retrying the same request cannot succeed."""
    return not answer.ok and answer.sub_code in NEVER_REFUND


def request_refund(
    *,
    out_trade_no: str,
    trade_no: str,
    amount: Money,
    out_request_no: str,
    reason: str,
    gateway: str | None = None,
    timeout: float | None = None,
) -> RefundAnswer:
    """alipay.trade.refund for `amount` of one trade, idempotent by `out_request_no`.

    Reuse the same `out_request_no` (and amount) on every retry: Alipay refunds it
    once and answers `fund_change = N` to a replay. `refund_amount` of the answer
    is Alipay's `refund_fee`: what the trade has had refunded in total.
    """
    _check_ids(out_trade_no, trade_no)
    _check_request_no(out_request_no)
    biz = {
        "out_trade_no": out_trade_no,
        "trade_no": trade_no,
        "refund_amount": amount_text(amount),
        "out_request_no": out_request_no,
        "refund_reason": (reason or "")[:256],
    }
    node = _call(REFUND, _drop_empty(biz), gateway=gateway, timeout=timeout)
    _same_trade(node, out_trade_no, trade_no)
    if node.get("code") != SUCCESS_CODE:
        return _refusal(node)
    return RefundAnswer(
        ok=True,
        fund_change=node.get("fund_change") == "Y",
        code=SUCCESS_CODE,
        sub_code="",
        message=node.get("msg", ""),
        refund_amount=_decimal(node.get("refund_fee")),
        raw=node,
    )


def query_refund(
    *,
    out_trade_no: str,
    trade_no: str,
    out_request_no: str,
    gateway: str | None = None,
    timeout: float | None = None,
) -> RefundAnswer:
    """alipay.trade.fastpay.refund.query: did the refund `out_request_no` move the money?

    `fund_change` is True when `refund_status` is REFUND_SUCCESS, or (older
    answers without `refund_status`) when the refund's `refund_amount` is given;
    code 10000 alone only means the query ran.
    """
    _check_ids(out_trade_no, trade_no)
    _check_request_no(out_request_no)
    biz = {"out_trade_no": out_trade_no, "trade_no": trade_no, "out_request_no": out_request_no}
    node = _call(REFUND_QUERY, _drop_empty(biz), gateway=gateway, timeout=timeout)
    _same_trade(node, out_trade_no, trade_no)
    if node.get("code") != SUCCESS_CODE:
        return _refusal(node)
    if node.get("out_request_no") not in (None, "", out_request_no):
        raise AlipayUnavailable("refund query answered for another request number", raw=node)
    refund_amount = _decimal(node.get("refund_amount"))
    status = node.get("refund_status")
    moved = status == "REFUND_SUCCESS" if status else refund_amount is not None
    return RefundAnswer(
        ok=True,
        fund_change=moved,
        code=SUCCESS_CODE,
        sub_code="",
        message=node.get("msg", ""),
        refund_amount=refund_amount if moved else None,
        raw=node,
    )


# --- building the request ------------------------------------------------------------


def amount_text(amount):
    """CNY with exactly two decimals, as a string (never a float); else ValueError."""
    if not isinstance(amount, Money):
        raise ValueError("amount must be a Money")
    if str(amount.currency) != "CNY":
        raise ValueError("Alipay refunds are in CNY")
    value = amount.amount
    if not value.is_finite() or value <= 0:
        raise ValueError("the refund amount must be positive")
    if value != value.quantize(FEN):
        raise ValueError(f"the refund amount {value} is not whole fen (two decimals at most)")
    return f"{value.quantize(FEN)}"


def _check_ids(out_trade_no, trade_no):
    if not (out_trade_no or trade_no):
        raise ValueError("out_trade_no or trade_no is required")
    for value in (out_trade_no, trade_no):
        if value and len(value) > 64:
            raise ValueError("trade numbers are at most 64 characters")


def _check_request_no(out_request_no):
    if not out_request_no or len(out_request_no) > 64:
        raise ValueError("out_request_no is required (at most 64 characters)")


def _drop_empty(biz):
    return {key: value for key, value in biz.items() if value not in (None, "")}


def gateway_url(gateway=None):
    """The absolute gateway URL: `gateway`, else ALIPAY_GATEWAY, a relative one (the
    in-portal sandbox, `/topups/sandbox/gateway/`) joined to PORTAL_BASE_URL."""
    url = gateway or settings.ALIPAY_GATEWAY
    if url.startswith("/"):
        base = getattr(settings, "PORTAL_BASE_URL", "") or ""
        if not base:
            raise ImproperlyConfigured(
                "ALIPAY_GATEWAY is relative (the sandbox): set PORTAL_BASE_URL or pass gateway="
            )
        url = base.rstrip("/") + url
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"the Alipay gateway must be an http(s) URL, not {url!r}")
    return url


# --- the call and its answer ----------------------------------------------------------


def _call(method, biz, *, gateway, timeout):
    """POST one signed call; the verified response node (a dict), or AlipayUnavailable."""
    url = gateway_url(gateway)
    params = alipay.openapi_params(method, biz)
    public_key = alipay.alipay_public_key()  # ImproperlyConfigured before sending, not after
    if timeout is None:
        timeout = getattr(settings, "ALIPAY_HTTP_TIMEOUT", DEFAULT_TIMEOUT)
    # As Alipay's own SDKs send it: the common parameters (charset included, so the
    # gateway knows how to read the body) in the query string, biz_content in the body.
    common = urllib.parse.urlencode({k: v for k, v in params.items() if k != "biz_content"})
    body = urllib.parse.urlencode({"biz_content": params["biz_content"]}).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 (scheme checked in gateway_url)
        f"{url}{'&' if '?' in url else '?'}{common}",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        raise AlipayUnavailable(f"{method}: HTTP {exc.code} from the gateway") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, UnicodeDecodeError) as exc:
        raise AlipayUnavailable(f"{method}: {exc}") from exc
    return _verified_node(method, body, public_key)


def _verified_node(method, body, public_key):
    """The response node whose `sign` verifies over its exact text; else AlipayUnavailable."""
    try:
        document = json.loads(body, parse_float=Decimal)  # amounts never pass through float
    except ValueError as exc:
        raise AlipayUnavailable(f"{method}: the answer is not JSON") from exc
    if not isinstance(document, dict):
        raise AlipayUnavailable(f"{method}: unexpected answer")
    key = alipay.response_key(method)
    if key not in document and "error_response" in document:
        key = "error_response"
    text = alipay.response_node_text(body, key)
    if text is None:
        raise AlipayUnavailable(f"{method}: no {key} in the answer", raw=document)
    node = document[key]
    if not alipay.verify_text(text, document.get("sign"), public_key):
        # Unsigned or forged: nothing in it can be trusted, not even a refusal.
        logger.warning("Alipay %s answer failed signature verification", method)
        raise AlipayUnavailable(f"{method}: the answer's signature does not verify", raw=node)
    return node


def _same_trade(node, out_trade_no, trade_no):
    if out_trade_no and node.get("out_trade_no") not in (None, "", out_trade_no):
        raise AlipayUnavailable("Alipay answered for another out_trade_no", raw=node)
    if trade_no and node.get("trade_no") not in (None, "", trade_no):
        raise AlipayUnavailable("Alipay answered for another trade_no", raw=node)


def _refusal(node):
    return RefundAnswer(
        ok=False,
        fund_change=False,
        code=str(node.get("code", "")),
        sub_code=str(node.get("sub_code", "")),
        message=str(node.get("sub_msg") or node.get("msg") or ""),
        refund_amount=None,
        raw=node,
    )


def _decimal(value):
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
