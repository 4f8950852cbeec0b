import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    """Security: `manage.py check --deploy` passes with production settings from the env."""
    env = {
        **os.environ,
        "PORTAL_ENV": "production",
        "SECRET_KEY": "x" * 20 + "production-like-secret-key-0123456789-abcdefghijk",
        "ALLOWED_HOSTS": "portal.example.com",
        "FIELD_ENCRYPTION_KEYS": "aGVsbG8taGVsbG8taGVsbG8taGVsbG8taGVsbG8tMDA=",
        "IDENTITY_HASH_KEY": "identity-key-for-the-check",
        "GATEWAY_SERVICE_TOKEN": "Zq3v8Jr-2kP9xW4mT7yB1nC6hD0sF5gL_aE8uR2tY4iO",
        "ALIPAY_SELLER_ID": "2088123412341234",
        "PORTAL_BASE_URL": "https://portal.example.com",
        "PORTAL_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secrets(tmp_path):
    """Security: secrets come from the environment; production has no fallback."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY"}}
    env.update(PORTAL_ENV="production", PORTAL_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_an_undocumented_portal_env_refuses_to_start(tmp_path):
    """Security (issue 24 point 6): PORTAL_ENV=PRODUCTION (capitals) or a typo must not
    silently run the development profile (DEBUG, sandbox cashier): it refuses to start."""
    for value in ("PRODUCTION", "prod", "production "):
        env = {**os.environ, "PORTAL_ENV": value, "PORTAL_VAR_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0, value
        assert "PORTAL_ENV" in result.stderr, result.stderr[-500:]
