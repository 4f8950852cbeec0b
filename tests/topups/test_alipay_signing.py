"""RSA2 signing and verification of the Alipay protocol (R-TOP-1), no database."""

import json
from urllib.parse import parse_qsl, urlparse

from cryptography.hazmat.primitives.asymmetric import rsa

from topups import alipay
from topups.sandbox import sandbox_alipay_private_key


def test_signing_string_sorts_and_skips_sign_and_empty_values():
    """R-TOP-1: the signed string is the sorted k=v pairs without sign/sign_type and empties."""
    params = {"b": "2", "a": "1", "sign": "x", "sign_type": "RSA2", "c": "", "d": None}
    assert alipay.signing_string(params, exclude=("sign", "sign_type")) == "a=1&b=2"


def test_notification_signature_roundtrip_and_tampering():
    """R-TOP-1: a notification verifies against Alipay's public key; any change breaks it."""
    key = sandbox_alipay_private_key()
    params = {"out_trade_no": "T1", "total_amount": "10.00", "sign_type": "RSA2", "app_id": "1"}
    params["sign"] = alipay.sign(params, key, exclude=("sign", "sign_type"))
    assert alipay.verify(params, key.public_key())
    assert not alipay.verify({**params, "total_amount": "10.01"}, key.public_key())
    assert not alipay.verify({**params, "sign": "bm90IGEgc2lnbmF0dXJl"}, key.public_key())
    assert not alipay.verify({**params, "sign": "%%%"}, key.public_key())
    assert not alipay.verify({**params, "sign_type": "RSA"}, key.public_key())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not alipay.verify(params, other.public_key())


def test_bare_base64_keys_are_accepted():
    """Alipay's console hands out keys without PEM armour; both forms load."""
    pem = (alipay.SANDBOX_KEYS / "alipay_public_key.pem").read_text()
    bare = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    assert (
        alipay.load_public_key(bare).public_numbers()
        == alipay.load_public_key(pem).public_numbers()
    )


class _TopUp:
    out_trade_no = "T20261128ABCDEF"

    class amount:  # noqa: N801 - a stand-in for Money
        from decimal import Decimal

        amount = Decimal("88.80")


def test_page_pay_request_is_signed_with_the_app_key(settings):
    """R-TOP-1: alipay.trade.page.pay carries app_id, the order and an RSA2 signature."""
    settings.ALIPAY_GATEWAY = "https://gateway.example/gateway.do"
    url = alipay.page_pay_url(
        _TopUp, notify_url="https://p.example/topups/alipay/notify/", return_url="https://p/r"
    )
    parsed = urlparse(url)
    assert parsed.netloc == "gateway.example"
    params = dict(parse_qsl(parsed.query))
    assert params["method"] == "alipay.trade.page.pay"
    assert params["app_id"] == settings.ALIPAY_APP_ID
    biz = json.loads(params["biz_content"])
    assert biz["out_trade_no"] == "T20261128ABCDEF"
    assert biz["total_amount"] == "88.80"
    public = alipay.app_private_key().public_key()
    assert alipay.verify(params, public, exclude=("sign",))
