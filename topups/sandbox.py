"""The sandbox: plays Alipay inside the portal (development and tests only).

Page pay: it checks the portal's page-pay signature with the app's public key,
then sends a real RSA2-signed asynchronous notification — signed with the
DEVELOPMENT "Alipay" key in sandbox_keys/ — to the notify URL named in the
request, over HTTP, exactly as Alipay would.

Refunds (R-REF-5, R-REF-6): the same gateway URL answers alipay.trade.refund and
alipay.trade.fastpay.refund.query (`openapi_call`, at the end of this module) with
Alipay's signed JSON envelope, and has switches to make a trade refuse or the next
call fail.
"""

import json as _json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import alipay

ALIPAY_PRIVATE_KEY_FILE = alipay.SANDBOX_KEYS / "alipay_private_key.pem"


def sandbox_alipay_private_key():
    return alipay.load_private_key(ALIPAY_PRIVATE_KEY_FILE.read_text())


def app_public_key():
    return alipay.app_private_key().public_key()


def verify_request(params):
    """The page-pay request came from the portal (signed with the app key)."""
    return alipay.verify(params, app_public_key(), exclude=("sign",))


def notification_for(
    request_params, *, trade_status="TRADE_SUCCESS", payer_name="", payer_account="", trade_no=None
):
    import json

    biz = json.loads(request_params["biz_content"])
    now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
    amount = f"{Decimal(biz['total_amount']):.2f}"
    params = {
        "notify_time": now,
        "notify_type": "trade_status_sync",
        "notify_id": secrets.token_hex(16),
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "app_id": request_params["app_id"],
        "seller_id": settings.ALIPAY_SELLER_ID,
        "trade_no": trade_no or f"2026{secrets.randbelow(10**24):024d}",
        "out_trade_no": biz["out_trade_no"],
        "trade_status": trade_status,
        "total_amount": amount,
        "receipt_amount": amount,
        "buyer_pay_amount": amount,
        "subject": biz.get("subject", ""),
        "gmt_create": now,
        "gmt_payment": now,
        "buyer_id": f"2088{secrets.randbelow(10**12):012d}",
        "buyer_logon_id": payer_account,
        "buyer_user_name": payer_name,
    }
    params["sign"] = alipay.sign(
        params, sandbox_alipay_private_key(), exclude=("sign", "sign_type")
    )
    return params


def post_notification(notify_url, params, *, timeout=20):
    """POST the form like Alipay does; returns the plain-text answer."""
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(  # noqa: S310 (scheme checked by the view)
        notify_url,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        method="POST",
    )
    try:
        # The URL comes from a request the portal signed; the view checked its scheme.
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.read().decode().strip()
    except (urllib.error.URLError, OSError) as exc:
        return f"error: {exc}"


# --- OpenAPI refunds: alipay.trade.refund and alipay.trade.fastpay.refund.query --------
#
# The sandbox answers at the same gateway URL as Alipay (one gateway, `method`
# parameter), with Alipay's JSON envelope signed by the DEVELOPMENT "Alipay" key.
# What it has refunded lives in Django's cache (no model): per trade, a dict of
# out_request_no → amount. The cache is per process unless REDIS_URL is set; the
# gateway runs in the web process, so that is where the records and switches live.
#
# Switches (development and tests; the sandbox itself is refused in production):
# - set_trade_refusal(out_trade_no, "finished" | "closed" | "window"): every refund of
#   the trade is refused as Alipay refuses a finished trade (ACQ.TRADE_HAS_FINISHED),
#   a closed one (ACQ.TRADE_HAS_CLOSE) or one past its refund window
#   (ACQ.TRADE_STATUS_ERROR); `None` lifts it.
# - fail_next_call(out_trade_no, mode, seconds=…): the next refund or query call on
#   that trade fails once, as FAILURES says.

REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
OPENAPI_METHODS = (REFUND, REFUND_QUERY)
CACHE_PREFIX = "alipay-sandbox"
FEN = Decimal("0.01")

TRADE_REFUSALS = {
    "finished": ("ACQ.TRADE_HAS_FINISHED", "交易已完结"),
    "closed": ("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"),
    "window": ("ACQ.TRADE_STATUS_ERROR", "交易状态不合法 (past the refund window)"),
}
FAILURES = {
    # answered with Alipay's error, nothing refunded (retry)
    "system_error": _("40004 ACQ.SYSTEM_ERROR, nothing refunded"),
    "unknown_error": _("20000 isp.unknow-error, nothing refunded"),
    # no trustworthy answer (the client raises AlipayUnavailable)
    "timeout": _("the refund IS made, the answer comes `seconds` late (the client times out)"),
    "slow": _("nothing is done; the answer comes `seconds` late"),
    "http_error": _("HTTP 502 with an HTML page, nothing done"),
    "not_json": _("HTTP 200 with a body that is not JSON, nothing done"),
    "forged": _("a success answer signed with a key that is not Alipay's, nothing refunded"),
    "unsigned": _("a success answer without `sign`, nothing refunded"),
}


def _key(*parts):
    return ":".join((CACHE_PREFIX, *parts))


def set_trade_refusal(out_trade_no, refusal):
    """Make every refund of this trade refused (`finished`, `closed`, `window`), or None."""
    if refusal is None:
        cache.delete(_key("refusal", out_trade_no))
        return
    if refusal not in TRADE_REFUSALS:
        raise ValueError(f"unknown refusal {refusal!r}; one of {sorted(TRADE_REFUSALS)}")
    cache.set(_key("refusal", out_trade_no), refusal, timeout=None)


def fail_next_call(out_trade_no, mode, *, seconds=3.0):
    """The next refund/query call on this trade fails once, as FAILURES[mode] says."""
    if mode not in FAILURES:
        raise ValueError(f"unknown failure {mode!r}; one of {sorted(FAILURES)}")
    cache.set(_key("next", out_trade_no), {"mode": mode, "seconds": seconds}, timeout=None)


def trade_refusal(out_trade_no):
    return cache.get(_key("refusal", out_trade_no))


def next_failure(out_trade_no):
    return cache.get(_key("next", out_trade_no))


def refunds_of(out_trade_no):
    """What the sandbox refunded on this trade: {out_request_no: {"amount", "at"}}."""
    return cache.get(_key("refunds", out_trade_no)) or {}


def reset(out_trade_no):
    cache.delete_many([_key(kind, out_trade_no) for kind in ("refunds", "refusal", "next")])


class _TradeLock:
    """A short lock per trade in the cache (cache.add is atomic), so two calls on one
    trade never both see it unrefunded."""

    def __init__(self, out_trade_no, wait=5.0):
        self.key = _key("lock", out_trade_no)
        self.wait = wait

    def __enter__(self):
        deadline = time.monotonic() + self.wait
        while not cache.add(self.key, 1, timeout=30):
            if time.monotonic() > deadline:
                raise TimeoutError("sandbox trade lock")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        cache.delete(self.key)


def _now_text():
    return timezone.now().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")


def _error(code, msg, sub_code, sub_msg, **extra):
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg, **extra}


def _business_error(sub_code, sub_msg, **extra):
    return _error("40004", "Business Failed", sub_code, sub_msg, **extra)


def _find_trade(biz):
    """The paid Alipay top-up named by trade_no (preferred, as Alipay does) or out_trade_no."""
    from billing.models import Channel

    from .models import TopUp, TopUpState

    trade_no = biz.get("trade_no") or ""
    out_trade_no = biz.get("out_trade_no") or ""
    if not (trade_no or out_trade_no):
        return None
    rows = TopUp.objects.filter(
        channel=Channel.ALIPAY, state__in=(TopUpState.PAID, TopUpState.REFUNDED)
    ).exclude(trade_no="")
    rows = rows.filter(trade_no=trade_no) if trade_no else rows.filter(out_trade_no=out_trade_no)
    topup = rows.first()
    if topup is None or (out_trade_no and topup.out_trade_no != out_trade_no):
        return None
    return topup


def _amount(text):
    try:
        value = Decimal(str(text))
    except ArithmeticError:
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(FEN):
        return None
    return value.quantize(FEN)


def refund_answer(biz):
    """alipay.trade.refund against the sandbox's records: the response node (a dict)."""
    topup = _find_trade(biz)
    if topup is None:
        return _business_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
    ids = {"out_trade_no": topup.out_trade_no, "trade_no": topup.trade_no}
    amount = _amount(biz.get("refund_amount", ""))
    if amount is None:
        return _business_error("ACQ.INVALID_PARAMETER", "参数无效 (refund_amount)", **ids)
    total = topup.amount.amount
    # Without out_request_no Alipay takes the order number and refunds the whole trade only.
    request_no = biz.get("out_request_no") or topup.out_trade_no
    if not biz.get("out_request_no") and amount != total:
        return _business_error(
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额与订单金额不一致", **ids, refund_fee="0.00"
        )
    with _TradeLock(topup.out_trade_no):
        refunds = refunds_of(topup.out_trade_no)
        refunded = sum((Decimal(r["amount"]) for r in refunds.values()), Decimal("0.00"))
        success = {
            "code": "10000",
            "msg": "Success",
            **ids,
            "buyer_logon_id": topup.payer_account or "buy***@sandbox.example",
            "send_back_fee": "0.00",
        }
        if request_no in refunds:
            if Decimal(refunds[request_no]["amount"]) != amount:
                return _business_error(
                    "ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致 (same out_request_no)", **ids
                )
            return {
                **success,
                "fund_change": "N",
                "refund_fee": f"{refunded:.2f}",
                "gmt_refund_pay": refunds[request_no]["at"],
            }
        refusal = cache.get(_key("refusal", topup.out_trade_no))
        if refusal:
            sub_code, sub_msg = TRADE_REFUSALS[refusal]
            return _business_error(sub_code, sub_msg, **ids, refund_fee=f"{refunded:.2f}")
        if refunded + amount > total:
            return _business_error(
                "ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额无效 (above what is left)", **ids
            )
        at = _now_text()
        refunds[request_no] = {"amount": f"{amount:.2f}", "at": at}
        cache.set(_key("refunds", topup.out_trade_no), refunds, timeout=None)
        return {
            **success,
            "fund_change": "Y",
            "refund_fee": f"{refunded + amount:.2f}",
            "gmt_refund_pay": at,
        }


def refund_query_answer(biz):
    """alipay.trade.fastpay.refund.query: the refund's data if it was made, else none."""
    topup = _find_trade(biz)
    if topup is None:
        return _business_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
    request_no = biz.get("out_request_no") or ""
    if not request_no:
        return _error("40002", "Invalid Arguments", "isv.missing-parameter", "缺少out_request_no")
    node = {"code": "10000", "msg": "Success"}
    record = refunds_of(topup.out_trade_no).get(request_no)
    if record is None:
        return node  # code 10000 alone: no refund under this number (yet)
    return {
        **node,
        "out_trade_no": topup.out_trade_no,
        "trade_no": topup.trade_no,
        "out_request_no": request_no,
        "total_amount": f"{topup.amount.amount:.2f}",
        "refund_amount": record["amount"],
        "refund_status": "REFUND_SUCCESS",
        "gmt_refund_pay": record["at"],
    }


def _trade_of(biz):
    topup = _find_trade(biz)
    return topup.out_trade_no if topup else None


def openapi_call(params):
    """One OpenAPI call to the sandbox gateway: (HTTP status, body text, content type).

    Verifies the request's RSA2 signature with the app's public key first; a forged
    or altered request gets Alipay's 40002 isv.invalid-signature. Every JSON answer is
    signed with the development Alipay key, as Alipay signs its answers.
    """
    method = params.get("method", "")
    key = alipay.response_key(method) if method in OPENAPI_METHODS else "error_response"

    def answer(node, *, private_key=None, signed=True):
        if not signed:
            text = _json.dumps(node, separators=(",", ":"), ensure_ascii=False)
            return 200, f'{{"{key}":{text}}}', "application/json;charset=utf-8"
        body = alipay.signed_response_body(key, node, private_key or sandbox_alipay_private_key())
        return 200, body, "application/json;charset=utf-8"

    if method not in OPENAPI_METHODS:
        return answer(_error("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名"))
    if not verify_request(params):
        return answer(
            _error("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错 (sandbox)")
        )
    if params.get("app_id") != settings.ALIPAY_APP_ID:
        return answer(_error("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID"))
    try:
        biz = _json.loads(params.get("biz_content") or "")
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        return answer(
            _error("40002", "Invalid Arguments", "isv.invalid-parameter", "biz_content 无效")
        )

    trade = _trade_of(biz)
    failure = cache.get(_key("next", trade)) if trade else None
    if failure:
        cache.delete(_key("next", trade))
        mode, seconds = failure["mode"], float(failure.get("seconds", 3.0))
        if mode == "system_error":
            return answer(_business_error("ACQ.SYSTEM_ERROR", "系统错误"))
        if mode == "unknown_error":
            return answer(
                _error("20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙")
            )
        if mode == "http_error":
            return 502, "<html><body>502 Bad Gateway</body></html>", "text/html"
        if mode == "not_json":
            return 200, "<html><body>maintenance</body></html>", "text/html"
        if mode in ("forged", "unsigned"):
            fake = {"code": "10000", "msg": "Success", "fund_change": "Y", **_ids(biz)}
            if method == REFUND_QUERY:
                fake = {**fake, "refund_status": "REFUND_SUCCESS", "refund_amount": "0.01"}
            if mode == "unsigned":
                return answer(fake, signed=False)
            from cryptography.hazmat.primitives.asymmetric import rsa

            forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return answer(fake, private_key=forger)
        if mode == "slow":
            time.sleep(seconds)
        elif mode == "timeout":
            node = refund_answer(biz) if method == REFUND else refund_query_answer(biz)
            time.sleep(seconds)
            return answer(node)
    node = refund_answer(biz) if method == REFUND else refund_query_answer(biz)
    return answer(node)


def _ids(biz):
    return {k: biz[k] for k in ("out_trade_no", "trade_no") if biz.get(k)}
