"""Logins (issue 13): throttling and lockout for users and staff (django-axes), the gateway
token's failures rate-limited and alerted."""

import pytest
from django.core.cache import cache

from ops.models import StaffAlert
from tests.factories import PASSWORD, StaffFactory, UserFactory
from tests.ledger.http import TOKEN, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.delete("gateway-auth-failures:127.0.0.1")
    yield
    cache.delete("gateway-auth-failures:127.0.0.1")


def _login(client, url, email, password):
    return client.post(url, {"username": email, "password": password})


@pytest.mark.parametrize("url,factory", [("/login/", UserFactory), ("/admin/login/", StaffFactory)])
def test_repeated_failures_lock_the_login_out(client, url, factory, settings):
    """Issue 13: after AXES_FAILURE_LIMIT wrong passwords even the right one is refused
    (429) for the cool-off; staff see an alert; users and staff alike."""
    user = factory()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert _login(client, url, user.email, "wrong-password").status_code in (200, 429)
    resp = _login(client, url, user.email, PASSWORD)
    assert resp.status_code == 429
    assert "_auth_user_id" not in client.session
    alert = StaffAlert.objects.get(kind="login_lockout")
    assert user.email not in alert.message  # masked


def test_a_success_before_the_limit_resets_the_count(client, settings):
    """Issue 13: failures below the limit followed by a success leave no lockout."""
    user = UserFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "/login/", user.email, "wrong-password")
    assert _login(client, "/login/", user.email, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "/login/", user.email, "wrong-password")
    assert _login(client, "/login/", user.email, PASSWORD).status_code == 302


def test_gateway_token_failures_are_rate_limited_and_alerted(client, settings):
    """Issue 13: past the limit of wrong tokens an address gets 429 (the right token too,
    so guessing stops) and staff get one alert."""
    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    settings.GATEWAY_AUTH_FAILURE_LIMIT = 5
    body = {"api_key": "sk-x"}
    for _ in range(5):
        status, out = post(client, "authorize", body, token="guess")
        assert (status, out["code"]) == (401, "unauthorized")
    status, out = post(client, "authorize", body, token="guess")
    assert (status, out["code"]) == (429, "too_many_auth_failures")
    status, out = post(client, "authorize", body)  # right token, same address
    assert status == 429
    alert = StaffAlert.objects.get(kind="gateway_auth_failures")
    assert alert.occurrences == 1
    cache.delete("gateway-auth-failures:127.0.0.1")  # the window passes
    status, out = post(client, "authorize", body)
    assert status == 200


def test_signup_does_not_say_whether_an_address_has_an_account(client):
    """Issue 13: signing up with a taken address answers exactly like a new one (same
    redirect, same message), and the existing account is untouched."""
    from django.test import Client

    from accounts.models import User

    existing = UserFactory(email="taken@example.com")
    answers = []
    for email in ("taken@example.com", "fresh@example.com"):
        visitor = Client()
        resp = visitor.post("/signup/", {"email": email, "password": "Xy9!long-pass-word"})
        page = visitor.get(resp["Location"]).content.decode()
        answers.append((resp.status_code, resp["Location"], "log in to that one" in page))
    assert answers[0] == answers[1] == (302, "/login/", True)
    assert User.objects.filter(email="fresh@example.com").exists()
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD)
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1


def test_a_new_api_key_secret_never_rests_in_the_session(client):
    """Issue 13: the one-time secret is in the answer to the POST, never in the session
    table, and the answer may not be cached."""
    from django.contrib.sessions.models import Session

    from accounts.models import ApiKey

    user = UserFactory()
    client.force_login(user)
    resp = client.post("/api-keys/", {"name": "ci"})
    assert resp.status_code == 200
    key = ApiKey.objects.get(user=user) if hasattr(ApiKey, "user") else ApiKey.objects.get()
    secret = resp.context["fresh"]["secret"]
    assert secret.startswith(key.prefix)
    assert "no-store" in resp["Cache-Control"]
    for session in Session.objects.all():
        assert secret not in str(session.get_decoded())
        assert secret not in session.session_data
    assert secret not in client.get("/api-keys/").content.decode()  # shown once


@pytest.mark.parametrize(
    "email,password",
    [("li.wei.drill@example.com", "li.wei.drill"), ("zhangsan88@example.com", "Zhangsan88!!")],
)
def test_signup_password_built_from_the_email_is_refused(client, email, password):
    """Issue 13: a password made of the address's local part is refused, even where
    Django's similarity ratio stays under its threshold."""
    from accounts.models import User

    resp = client.post("/signup/", {"email": email, "password": password})
    assert resp.status_code == 200
    assert "password" in resp.context["form"].errors
    assert not User.objects.exists()
