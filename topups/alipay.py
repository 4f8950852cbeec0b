"""Alipay open-platform signing (RSA2 = SHA256withRSA), with `cryptography` directly.

This is the portal's only Alipay signing path (python-alipay-sdk is not a
dependency; topups/README.md says why): the two operations we need (sign a
page-pay request, verify an asynchronous notification) are a dozen lines over
`cryptography`, and doing them here keeps the exact signed string visible and
testable. What a verified notification does is services/alipay_notifications.py.

Rules of the protocol (Alipay open platform, "自行实现签名"):
- the string to sign is every parameter with a non-empty value, sorted by key,
  written `k=v` and joined with `&`, values not URL-encoded;
- a request is signed over everything but `sign`; a notification is verified
  over everything but `sign` and `sign_type`;
- the signature is base64 of an RSA PKCS#1 v1.5 signature over SHA-256.
"""

import base64
import json
import textwrap
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.translation import gettext

SANDBOX_KEYS = Path(__file__).resolve().parent / "sandbox_keys"
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")


def signing_string(params, *, exclude=("sign",)):
    return "&".join(
        f"{key}={params[key]}"
        for key in sorted(params)
        if key not in exclude and params[key] not in (None, "")
    )


def _pem(text, kind):
    """Accept a PEM block or the bare base64 body Alipay's console hands out."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    body = "\n".join(textwrap.wrap("".join(text.split()), 64))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()


@lru_cache(maxsize=16)
def load_private_key(text):
    return serialization.load_pem_private_key(_pem(text, "PRIVATE KEY"), password=None)


@lru_cache(maxsize=16)
def load_public_key(text):
    return serialization.load_pem_public_key(_pem(text, "PUBLIC KEY"))


def sign(params, private_key, *, exclude=("sign",)):
    message = signing_string(params, exclude=exclude).encode("utf-8")
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(params, public_key, *, exclude=("sign", "sign_type")):
    """True only for a well-formed RSA2 signature over the sorted parameters."""
    if params.get("sign_type", "RSA2") != "RSA2":
        return False
    try:
        signature = base64.b64decode(params.get("sign", ""), validate=True)
    except (ValueError, TypeError):
        return False
    if not signature:
        return False
    message = signing_string(params, exclude=exclude).encode("utf-8")
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _key_text(name):
    value = getattr(settings, name, "") or ""
    if value:
        return value
    path = getattr(settings, f"{name}_PATH", "") or ""
    if path:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_PATH cannot be read: {exc}") from exc
    raise ImproperlyConfigured(f"{name} (or {name}_PATH) is not configured")


def app_private_key():
    return load_private_key(_key_text("ALIPAY_APP_PRIVATE_KEY"))


def alipay_public_key():
    return load_public_key(_key_text("ALIPAY_PUBLIC_KEY"))


def page_pay_params(topup, *, notify_url, return_url, subject=None):
    """The signed parameters of alipay.trade.page.pay for one top-up. The subject the
    payer sees in Alipay's cashier is in the language of the page that sent them."""
    biz = {
        "out_trade_no": topup.out_trade_no,
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "total_amount": f"{topup.amount.amount:.2f}",
        "subject": subject or gettext("Balance top-up"),
        "timeout_express": f"{max(int(settings.TOPUP_EXPIRE_MINUTES), 1)}m",
    }
    params = {
        "app_id": settings.ALIPAY_APP_ID,
        "method": "alipay.trade.page.pay",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": timezone.localtime().strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
        "notify_url": notify_url,
        "return_url": return_url,
        "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
    }
    params["sign"] = sign(params, app_private_key())
    return params


def page_pay_url(topup, *, notify_url, return_url):
    params = page_pay_params(topup, notify_url=notify_url, return_url=return_url)
    gateway = settings.ALIPAY_GATEWAY
    return f"{gateway}{'&' if '?' in gateway else '?'}{urlencode(params)}"


# --- OpenAPI calls (alipay.trade.refund, alipay.trade.fastpay.refund.query) ---------------
#
# A server-to-server call posts the common parameters and `biz_content`, signed like
# page pay (every parameter but `sign`). The synchronous answer is a JSON object
# `{"<method with dots as underscores>_response": {...}, "sign": "..."}` (or
# `error_response` for a method the gateway does not know); Alipay signs the exact
# JSON text of that node as it appears in the body, so verification works on the
# raw text, never on a re-serialised dict.

ALIPAY_TIMEZONE = "Asia/Shanghai"  # Alipay reads `timestamp` as Beijing time


def response_key(method):
    return method.replace(".", "_") + "_response"


def openapi_params(method, biz, *, app_id=None, private_key=None, now=None):
    """The signed common parameters of one OpenAPI call (RSA2, app private key)."""
    from zoneinfo import ZoneInfo

    now = (now or timezone.now()).astimezone(ZoneInfo(ALIPAY_TIMEZONE))
    params = {
        "app_id": app_id or settings.ALIPAY_APP_ID,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
        "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
    }
    params["sign"] = sign(params, private_key or app_private_key())
    return params


def response_node_text(body, key):
    """The exact JSON text of `key`'s value in a response body, or None.

    Decodes the body once to find the node, then takes its text verbatim with the
    JSON decoder's own end position (no regular expression over nested braces).
    """
    decoder = json.JSONDecoder()
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get(key), dict):
        return None
    marker = json.dumps(key) + ":"
    start = body.find(marker)
    while start != -1:
        value_at = start + len(marker)
        while value_at < len(body) and body[value_at] in " \t\r\n":
            value_at += 1
        try:
            value, end = decoder.raw_decode(body, value_at)
        except ValueError:
            value = None
        if value == document[key]:
            return body[value_at:end]
        start = body.find(marker, start + 1)
    return None


def verify_text(text, signature_b64, public_key):
    """True only for a well-formed RSA2 signature over `text` (UTF-8)."""
    try:
        signature = base64.b64decode(signature_b64 or "", validate=True)
    except (ValueError, TypeError):
        return False
    if not signature:
        return False
    candidates = [text]
    if "\\/" in text:  # Alipay's SDKs also accept the node with JSON's optional `\/` unescaped
        candidates.append(text.replace("\\/", "/"))
    for candidate in candidates:
        try:
            public_key.verify(
                signature, candidate.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            continue
        return True
    return False


def sign_text(text, private_key):
    signature = private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def signed_response_body(key, node, private_key):
    """A response body as Alipay writes it: the node's JSON text, then `sign` over that text."""
    text = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
    return f'{{{json.dumps(key)}:{text},"sign":{json.dumps(sign_text(text, private_key))}}}'
