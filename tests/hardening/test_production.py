"""Production cannot be opened by one mistake (issue 13): settings refuse the sandbox Alipay
keys in any encoding, a missing seller id and a weak gateway token; seed_demo refuses to run;
the gateway docs and schema are closed to strangers and served without a CDN."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command

from config import production_checks

ROOT = Path(__file__).resolve().parent.parent.parent
SANDBOX = ROOT / "topups" / "sandbox_keys"
GOOD_TOKEN = "Zq3v8Jr-2kP9xW4mT7yB1nC6hD0sF5gL_aE8uR2tY4iO"


def production_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "GATEWAY_"))}
    env.update(
        PORTAL_ENV="production",
        SECRET_KEY="x" * 20 + "production-like-secret-key-0123456789-abcdefghijk",
        ALLOWED_HOSTS="portal.example.com",
        FIELD_ENCRYPTION_KEYS="aGVsbG8taGVsbG8taGVsbG8taGVsbG8taGVsbG8tMDA=",
        IDENTITY_HASH_KEY="identity-key-for-the-check",
        GATEWAY_SERVICE_TOKEN=GOOD_TOKEN,
        ALIPAY_SELLER_ID="2088123412341234",
        PORTAL_BASE_URL="https://portal.example.com",
        PORTAL_VAR_DIR=str(tmp_path),
    )
    env.update(extra)
    return env


def check(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *(args or ("check",))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _reencoded_private_key():
    """The sandbox app private key as traditional PKCS#1 PEM: no text in common with the file."""
    key = serialization.load_pem_private_key((SANDBOX / "app_private_key.pem").read_bytes(), None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _der_public_key():
    key = serialization.load_pem_public_key((SANDBOX / "alipay_public_key.pem").read_bytes())
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def test_sandbox_key_is_recognised_by_its_numbers_in_every_encoding(tmp_path):
    """Issue 13: PKCS#1 PEM, bare base64 of a DER, and a binary DER file are all the sandbox key."""
    import base64

    der_path = tmp_path / "alipay.der"
    der_path.write_bytes(_der_public_key())
    assert production_checks.sandbox_key_problem("K", _reencoded_private_key(), "")
    assert production_checks.sandbox_key_problem(
        "K", base64.b64encode(_der_public_key()).decode(), ""
    )
    assert production_checks.sandbox_key_problem("K", "", str(der_path))
    # a freshly generated key is fine
    from cryptography.hazmat.primitives.asymmetric import rsa

    fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = fresh.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert production_checks.sandbox_key_problem("K", pem, "") is None
    assert (
        production_checks.sandbox_key_problem("K", "not a key", "") == "K is not a readable RSA key"
    )


def test_production_refuses_a_reencoded_sandbox_private_key(tmp_path):
    """Issue 13: the sandbox key re-encoded (PKCS#1 instead of PKCS#8) is still refused."""
    path = tmp_path / "app.pem"
    path.write_text(_reencoded_private_key())
    result = check(production_env(tmp_path, ALIPAY_APP_PRIVATE_KEY_PATH=str(path)))
    assert result.returncode != 0
    assert "sandbox key" in result.stderr


def test_production_refuses_a_der_sandbox_public_key(tmp_path):
    """Issue 13: Alipay's sandbox public key as a binary DER file is refused."""
    path = tmp_path / "alipay.der"
    path.write_bytes(_der_public_key())
    result = check(production_env(tmp_path, ALIPAY_PUBLIC_KEY_PATH=str(path)))
    assert result.returncode != 0
    assert "sandbox key" in result.stderr


def test_production_requires_the_portal_https_address(tmp_path):
    """Issue 13: emailed verification links need the portal's public https address."""
    for value in (None, "http://portal.example.com"):
        env = production_env(tmp_path)
        if value is None:
            del env["PORTAL_BASE_URL"]
        else:
            env["PORTAL_BASE_URL"] = value
        result = check(env)
        assert result.returncode != 0 and "PORTAL_BASE_URL" in result.stderr


def test_production_requires_the_seller_id(tmp_path):
    """Issue 13: without ALIPAY_SELLER_ID a notification for another merchant could credit."""
    env = production_env(tmp_path)
    del env["ALIPAY_SELLER_ID"]
    result = check(env)
    assert result.returncode != 0
    assert "ALIPAY_SELLER_ID" in result.stderr


@pytest.mark.parametrize(
    "token",
    ["dev-gateway-token", "short-token", "a" * 64, "ab" * 40, "gateway-token-for-the-check"],
)
def test_weak_gateway_tokens_are_refused(token):
    """Issue 13: the gateway token must be long and random; known or repetitive values fail."""
    assert production_checks.token_problem(token)


def test_random_gateway_tokens_pass():
    """Issue 13: what secrets.token_urlsafe makes is accepted."""
    for _ in range(20):
        assert production_checks.token_problem(secrets.token_urlsafe(32)) is None
        assert production_checks.token_problem(secrets.token_hex(24)) is None


def test_production_refuses_a_weak_gateway_token(tmp_path):
    """Issue 13: settings refuse to start with a short token."""
    result = check(production_env(tmp_path, GATEWAY_SERVICE_TOKEN="gateway-token-2026"))
    assert result.returncode != 0
    assert "GATEWAY_SERVICE_TOKEN" in result.stderr


def test_production_settings_are_clean_with_check_deploy(tmp_path):
    """Issue 13 / security: the hardened profile passes `check --deploy` with good values."""
    result = check(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_seed_demo_refuses_in_production(settings):
    """Issue 13: demo logins with a published password never land on a production database."""
    from accounts.models import User

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not User.objects.filter(email="user@demo.local").exists()


@pytest.mark.django_db
class TestGatewayDocs:
    @pytest.fixture(autouse=True)
    def _closed(self, settings):
        settings.GATEWAY_DOCS_PUBLIC = False
        settings.GATEWAY_SERVICE_TOKEN = GOOD_TOKEN

    @pytest.mark.parametrize("path", ["docs", "openapi.json"])
    def test_strangers_and_users_are_refused(self, client, path):
        """Issue 13: in production the schema and docs need the token or a staff login."""
        from tests.factories import UserFactory

        assert client.get(f"/api/v1/gateway/{path}").status_code == 401
        resp = client.get(f"/api/v1/gateway/{path}", HTTP_AUTHORIZATION="Bearer wrong")
        assert resp.status_code == 401
        client.force_login(UserFactory())
        assert client.get(f"/api/v1/gateway/{path}").status_code == 401

    @pytest.mark.parametrize("path", ["docs", "openapi.json"])
    def test_token_or_staff_may_read(self, client, path):
        """Issue 13: the gateway (token) and staff (login) read the docs."""
        from tests.factories import StaffFactory

        resp = client.get(f"/api/v1/gateway/{path}", HTTP_AUTHORIZATION=f"Bearer {GOOD_TOKEN}")
        assert resp.status_code == 200
        client.force_login(StaffFactory())
        assert client.get(f"/api/v1/gateway/{path}").status_code == 200

    def test_docs_page_loads_no_cdn_asset(self, client):
        """Issue 13: the Swagger page references the portal's own static files only."""
        from tests.factories import StaffFactory

        client.force_login(StaffFactory())
        html = client.get("/api/v1/gateway/docs").content.decode()
        assert "swagger-ui-bundle.js" in html
        assert "cdn" not in html.lower()
        assert "https://" not in html and "http://" not in html.replace("http://testserver", "")


def test_health_probes_are_not_redirected_to_https_in_production(tmp_path):
    """Issue 13: liveness answers a plain-HTTP probe in production (no 301 to https)."""
    script = (
        "from django.test import Client\n"
        "c = Client(raise_request_exception=False)\n"
        "r = c.get('/ops/health/live/', HTTP_HOST='portal.example.com')\n"
        "s = c.get('/billing/', HTTP_HOST='portal.example.com')\n"
        "print('codes', r.status_code, s.status_code)\n"
    )
    result = check(production_env(tmp_path), "shell", "-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "codes 200 301" in result.stdout
