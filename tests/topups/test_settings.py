"""The sandbox cashier and its development keys never run in production (R-TOP-1)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PROD = {
    "PORTAL_ENV": "production",
    "SECRET_KEY": "x" * 20 + "production-like-secret-key-0123456789-abcdefghijk",
    "ALLOWED_HOSTS": "portal.example.com",
    "FIELD_ENCRYPTION_KEYS": "aGVsbG8taGVsbG8taGVsbG8taGVsbG8taGVsbG8tMDA=",
    "IDENTITY_HASH_KEY": "identity-key-for-the-check",
    "GATEWAY_SERVICE_TOKEN": "Zq3v8Jr-2kP9xW4mT7yB1nC6hD0sF5gL_aE8uR2tY4iO",
    "ALIPAY_SELLER_ID": "2088123412341234",
    "PORTAL_BASE_URL": "https://portal.example.com",
}


def _check(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(PROD, PORTAL_VAR_DIR=str(tmp_path), **extra)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_the_sandbox_and_its_keys(tmp_path):
    """R-TOP-1: ALIPAY_SANDBOX or the shipped dev keys make production refuse to start."""
    keys = ROOT / "topups" / "sandbox_keys"
    result = _check(tmp_path, ALIPAY_SANDBOX="1")
    assert result.returncode != 0 and "ALIPAY_SANDBOX" in result.stderr
    result = _check(tmp_path, ALIPAY_PUBLIC_KEY_PATH=str(keys / "alipay_public_key.pem"))
    assert result.returncode != 0 and "sandbox key" in result.stderr
    bare = "".join(
        line
        for line in (keys / "app_private_key.pem").read_text().splitlines()
        if not line.startswith("-----")
    )
    result = _check(tmp_path, ALIPAY_APP_PRIVATE_KEY=bare)
    assert result.returncode != 0 and "sandbox key" in result.stderr
    assert _check(tmp_path).returncode == 0
