import pytest

pytestmark = pytest.mark.django_db


def test_signup_opens_account_and_logs_in(client):
    """R-ACC-1: signing up in the pages opens the balance account."""
    resp = client.post(
        "/signup/",
        {"email": "web@example.com", "phone": "13800000000", "password": "Xy9!long-pass"},
    )
    assert resp.status_code == 302
    # issue 13: the same answer whether the address was free or not, so log in next
    assert resp["Location"] == "/login/"
    assert client.login(username="web@example.com", password="Xy9!long-pass")
    resp = client.get("/")
    assert resp.status_code == 200
    assert b"Active" in resp.content


def test_dashboard_needs_login(client):
    assert client.get("/").status_code == 302
