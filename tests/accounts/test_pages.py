"""User pages: verification (R-ACC-2), API keys (R-ACC-6), agreement (R-ACC-7)."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from accounts import services
from accounts.api_keys import hash_secret
from accounts.identity import make_resident_id
from accounts.models import (
    AgreementAcceptance,
    AgreementState,
    AgreementVersion,
    ApiKey,
    ApiKeyState,
    Verification,
    VerificationState,
)
from tests.factories import UserFactory

from .conftest import PDF, PNG, submit_individual

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def test_individual_verification_form_submits(logged_in, user):
    """R-ACC-2: the page form submits an individual verification."""
    number = make_resident_id(date(1992, 7, 1), sequence=77)
    resp = logged_in.post(
        "/verification/new/individual/",
        {"legal_name": "Li Ming", "id_number": number, "phone": "13800000001"},
    )
    assert resp.status_code == 302
    v = Verification.objects.get(user=user)
    assert v.state == VerificationState.SUBMITTED
    assert b"Submitted (awaiting review)" in logged_in.get("/verification/").content


def test_form_shows_clear_error_for_bad_check_digit(logged_in, user):
    """R-ACC-2: a wrong check digit gets a clear message and stores nothing."""
    resp = logged_in.post(
        "/verification/new/individual/",
        {"legal_name": "Li Ming", "id_number": "110105199005171234", "phone": "13800000001"},
    )
    assert resp.status_code == 200
    assert b"check digit" in resp.content
    assert not Verification.objects.exists()


def test_enterprise_form_refuses_wrong_type_and_oversize(logged_in, settings):
    """R-ACC-5: uploads of the wrong type or over the limit are refused in the page."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {
        "company_name": "Acme",
        "credit_code": "91350100M000100Y43",
        "legal_representative": "Zhao",
        "phone": "01050000000",
    }
    fake = SimpleUploadedFile("licence.pdf", b"<html>not a pdf</html>", "application/pdf")
    resp = logged_in.post("/verification/new/enterprise/", {**data, "licence_file": fake})
    assert b"Only PDF, JPEG or PNG" in resp.content
    settings.UPLOAD_MAX_BYTES = 10
    big = SimpleUploadedFile("licence.pdf", PDF, "application/pdf")
    resp = logged_in.post("/verification/new/enterprise/", {**data, "licence_file": big})
    assert b"larger than" in resp.content
    assert not Verification.objects.exists()
    settings.UPLOAD_MAX_BYTES = 1000
    ok = SimpleUploadedFile("licence.png", PNG, "image/png")
    assert (
        logged_in.post("/verification/new/enterprise/", {**data, "licence_file": ok}).status_code
        == 302
    )
    assert Verification.objects.get().check_digit_warning is False


def test_another_users_verification_is_not_found(logged_in):
    """R-ACC-2: a user reading another user's verification by id gets 404."""
    other = submit_individual(UserFactory())
    assert logged_in.get(f"/verification/{other.pk}/").status_code == 404


def test_resubmission_offered_after_rejection(logged_in, user, cs_agent):
    """R-ACC-2: after a rejection the page shows the reason and offers a new submission."""
    v = submit_individual(user)
    assert b"As an individual" not in logged_in.get("/verification/").content
    services.reject_verification(v, actor=cs_agent, reason="Name does not match")
    body = logged_in.get("/verification/").content
    assert b"Name does not match" in body and b"Submit again" in body


# ---------------------------------------------------------------- API keys
def test_api_key_secret_shown_once_and_stored_hashed(logged_in, user):
    """R-ACC-6: the secret appears once after creation; only its hash is stored."""
    resp = logged_in.post("/api-keys/", {"name": "ci"}, follow=True)
    key = ApiKey.objects.get(account__user=user)
    secret = resp.context["fresh"]["secret"]
    assert secret.startswith(key.prefix)
    assert secret.encode() in resp.content
    assert key.secret_hash == hash_secret(secret) and secret not in key.secret_hash
    again = logged_in.get("/api-keys/")
    assert secret.encode() not in again.content
    assert key.prefix.encode() in again.content
    assert services.resolve_api_key(secret) == key


def test_revoke_own_key(logged_in, user):
    """R-ACC-6: the user revokes their key; the gateway lookup then sees it revoked."""
    key, raw = services.create_api_key(user, name="k")
    assert logged_in.post(f"/api-keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.state == ApiKeyState.REVOKED
    assert services.resolve_api_key(raw).state == ApiKeyState.REVOKED


def test_another_users_key_by_id_is_404_and_unchanged(logged_in):
    """R-ACC-6: acting on another user's key by id: 404, nothing changes."""
    other_key, _ = services.create_api_key(UserFactory(), name="theirs")
    assert logged_in.post(f"/api-keys/{other_key.pk}/revoke/").status_code == 404
    other_key.refresh_from_db()
    assert other_key.state == ApiKeyState.ACTIVE
    assert b"theirs" not in logged_in.get("/api-keys/").content


def test_revoke_needs_post(logged_in, user):
    key, _ = services.create_api_key(user, name="k")
    assert logged_in.get(f"/api-keys/{key.pk}/revoke/").status_code == 405
    key.refresh_from_db()
    assert key.state == ApiKeyState.ACTIVE


# ---------------------------------------------------------------- agreement
def _published(version, days):
    return AgreementVersion.objects.create(
        version=version,
        title=f"Terms {version}",
        body="Body",
        effective_at=timezone.now() + timedelta(days=days),
        state=AgreementState.PUBLISHED,
        published_at=timezone.now(),
    )


def test_agreement_page_accept_records_user_version_time_ip(logged_in, user):
    """R-ACC-7: acceptance stores user, version, time and IP."""
    in_force = _published("1", -5)
    upcoming = _published("2", 5)
    body = logged_in.get("/agreement/").content.decode()
    assert "Terms 1" in body and "Terms 2" in body and "Takes effect on" in body
    resp = logged_in.post(f"/agreement/{in_force.pk}/accept/", REMOTE_ADDR="203.0.113.9")
    assert resp.status_code == 302
    a = AgreementAcceptance.objects.get(user=user, version=in_force)
    assert a.ip == "203.0.113.9" and a.accepted_at is not None
    logged_in.post(f"/agreement/{in_force.pk}/accept/", REMOTE_ADDR="198.51.100.1")
    assert AgreementAcceptance.objects.filter(user=user).count() == 1  # unique per version
    logged_in.post(f"/agreement/{upcoming.pk}/accept/")
    assert AgreementAcceptance.objects.filter(user=user).count() == 2


def test_draft_or_superseded_version_cannot_be_accepted(logged_in, user):
    """R-ACC-7: only a published version in force or announced can be accepted."""
    old = _published("1", -10)
    _published("2", -1)
    draft = AgreementVersion.objects.create(
        version="3", title="t", body="b", effective_at=timezone.now() + timedelta(days=9)
    )
    logged_in.post(f"/agreement/{old.pk}/accept/")
    logged_in.post(f"/agreement/{draft.pk}/accept/")
    assert not AgreementAcceptance.objects.exists()
    assert logged_in.post("/agreement/99999/accept/").status_code == 404


def test_user_lists_are_bounded_in_queries(logged_in, user, django_assert_max_num_queries):
    """No N+1: the key list, verification and agreement pages use a fixed number of queries."""
    for i in range(15):
        services.create_api_key(user, name=f"k{i}")
    _published("1", -1)
    _published("2", 3)
    for url in ("/api-keys/", "/verification/", "/agreement/"):
        with django_assert_max_num_queries(8):
            assert logged_in.get(url).status_code == 200
    # the home page ("/") reads every app: pinned in tests/test_home.py
    with django_assert_max_num_queries(16):
        assert logged_in.get("/").status_code == 200
