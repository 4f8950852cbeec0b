"""The sandbox cashier: plays Alipay inside the portal (development and tests only).

It checks the portal's page-pay signature with the app's public key, then
sends a real RSA2-signed asynchronous notification — signed with the
DEVELOPMENT "Alipay" key in sandbox_keys/ — to the notify URL named in the
request, over HTTP, exactly as Alipay would.
"""

import secrets
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

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
