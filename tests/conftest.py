"""Shared fixtures.

Every test runs on PostgreSQL (scripts/test.sh starts a throwaway embedded server when
DATABASE_URL is unset). Tests that need another service carry a marker: `redis` or
`browser`. Without the service they skip (on a laptop) — unless PORTAL_REQUIRE_SERVICES=1
(CI), which turns every such skip into a failure.
"""

import datetime
import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from tests.backends import RecordingEmailBackend
from tests.factories import UserFactory

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _missing(what):
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (PORTAL_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


def _redis_up():
    from django.conf import settings

    url = settings.REDIS_URL
    if not url:
        return False
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("redis") and not _redis_up():
        _missing("Redis (set REDIS_URL)")
    if item.get_closest_marker("browser") and not shutil.which(CHROMIUM):
        _missing(f"Chromium at {CHROMIUM}")


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped and not REQUIRE_SERVICES:
        terminalreporter.write_line(
            f"NOTE: {len(skipped)} service-backed tests were skipped "
            "(Redis/Chromium missing); CI runs them all."
        )


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls
    # from the test body are still synchronous. Scoped to the test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _english_unless_asked(settings, monkeypatch):
    """The portal speaks Chinese by default (R-ADM-6): the site's default language and a
    new user's saved language are zh-hans. Tests read English unless they ask for
    Chinese (Accept-Language, the user's saved language, or these two defaults)."""
    from accounts.models import User

    settings.LANGUAGE_CODE = "en"
    monkeypatch.setattr(User._meta.get_field("language"), "default", "en")


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _settler_drains_and_stops(settings):
    """A settle_usage job run in a test settles what is pending and returns, instead of
    staying on for a minute as the continuous settler does."""
    settings.USAGE_SETTLER_SECONDS = 0


@pytest.fixture
def user(db):
    """A plain user (no phone, so no SMS) with their balance account."""
    return UserFactory(phone="")


@pytest.fixture
def account(user):
    return user.balance_account


@pytest.fixture
def clock():
    """A fixed 'now' the tests move by hand."""
    return timezone.now().replace(microsecond=0) + datetime.timedelta(days=1)


@pytest.fixture
def recording_email(settings):
    """Every email sent, kept in RecordingEmailBackend.sent (thread-safe)."""
    settings.EMAIL_BACKEND = "tests.backends.RecordingEmailBackend"
    RecordingEmailBackend.reset()
    yield RecordingEmailBackend
    RecordingEmailBackend.reset()
