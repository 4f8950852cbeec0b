"""R-ACC-5: encrypted at rest, masked everywhere, full view only with permission, audited."""

from datetime import date

import pytest
from django.db import connection

from accounts import services
from accounts.crypto import decrypt_bytes
from accounts.identity import make_resident_id
from core.models import AuditRecord
from tests.factories import StaffFactory, UserFactory, grant

from .conftest import PDF, submit_enterprise, submit_individual

pytestmark = pytest.mark.django_db

NUMBER = make_resident_id(date(1990, 5, 17), sequence=555)
MASKED = NUMBER[:4] + "*" * 10 + NUMBER[-4:]


def _raw_row(pk):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id_number, legal_name, company_name, credit_code, legal_representative,"
            " licence_file FROM accounts_verification WHERE id = %s",
            [pk],
        )
        return cur.fetchone()


def test_numbers_and_names_are_encrypted_in_the_database(user):
    """R-ACC-5: the table holds Fernet tokens, never the ID number or name."""
    v = submit_individual(user, id_number=NUMBER, name="Li Ming")
    raw_number, raw_name, *_ = _raw_row(v.pk)
    assert NUMBER not in raw_number and "Li Ming" not in raw_name
    assert decrypt_bytes(raw_number.encode()).decode() == NUMBER
    v.refresh_from_db()
    assert v.id_number == NUMBER and v.legal_name == "Li Ming"


def test_licence_file_is_encrypted_on_disk_and_has_no_public_url(user, tmp_path):
    """R-ACC-5: uploaded licences are stored encrypted under a random name, no media URL."""
    v = submit_enterprise(user)
    row = _raw_row(v.pk)
    assert NUMBER not in str(row)
    files = list((tmp_path / "media").rglob("*.enc"))
    assert len(files) == 1
    stored = files[0].read_bytes()
    assert b"%PDF" not in stored
    assert decrypt_bytes(stored) == PDF
    assert "licence" not in files[0].name  # the user's file name is not kept
    with pytest.raises(ValueError):
        v.licence_file.url  # noqa: B018


def test_key_rotation_old_tokens_still_decrypt(user, settings):
    """R-ACC-5: MultiFernet: a new first key encrypts, old keys still decrypt."""
    from cryptography.fernet import Fernet

    v = submit_individual(user, id_number=NUMBER)
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    v.refresh_from_db()
    assert v.id_number == NUMBER


def test_user_pages_show_only_masked_data(client, user):
    """R-ACC-5: the user's own pages show the masked number, never the full one."""
    v = submit_individual(user, id_number=NUMBER, name="Li Ming")
    client.force_login(user)
    for url in ("/verification/", f"/verification/{v.pk}/"):
        body = client.get(url).content.decode()
        assert MASKED in body
        assert NUMBER not in body and "Li Ming" not in body


def test_admin_pages_show_only_masked_data(client, user, cs_agent):
    """R-ACC-5: the CS review queue and case page show masked data only."""
    v = submit_individual(user, id_number=NUMBER, name="Li Ming")
    client.force_login(cs_agent)
    for url in ("/admin/accounts/verification/", f"/admin/accounts/verification/{v.pk}/change/"):
        resp = client.get(url)
        assert resp.status_code == 200
        body = resp.content.decode()
        assert MASKED in body
        assert NUMBER not in body and "Li Ming" not in body
    assert "Show full identity data" not in body


def test_full_view_needs_permission_and_is_audited(client, user, cs_agent, risk_officer):
    """R-ACC-5: only holders of view_identity_document see the full data; each view audited."""
    v = submit_individual(user, id_number=NUMBER, name="Li Ming")
    url = f"/admin/accounts/verification/{v.pk}/identity/"
    client.force_login(cs_agent)
    assert client.post(url, {"reason": "curious"}).status_code == 403
    assert not AuditRecord.objects.filter(action="view_identity").exists()
    client.force_login(risk_officer)
    page = client.get(f"/admin/accounts/verification/{v.pk}/change/").content.decode()
    assert "Show full identity data" in page
    assert NUMBER not in client.get(url).content.decode()  # the form asks for a reason first
    body = client.post(url, {"reason": "fraud check #12"}).content.decode()
    assert NUMBER in body and "Li Ming" in body
    audit = AuditRecord.objects.get(action="view_identity")
    assert (audit.actor, audit.reason, audit.object_id) == (
        risk_officer,
        "fraud check #12",
        str(v.pk),
    )


def test_document_download_needs_permission_and_is_audited(client, user, risk_officer):
    """R-ACC-5: licence downloads go through a permission-checked, audited view."""
    v = submit_enterprise(user)
    url = f"/verification/{v.pk}/document/licence/"
    client.force_login(user)  # the owner downloads their own file
    assert client.get(url).status_code == 200
    client.force_login(UserFactory())  # another user: 404, nothing to learn
    assert client.get(url).status_code == 404
    client.force_login(grant(StaffFactory(), "accounts.view_verification"))
    assert client.get(url).status_code == 403
    assert not AuditRecord.objects.filter(action="download_licence").exclude(actor=user).exists()
    client.force_login(risk_officer)
    resp = client.get(url)
    assert resp.status_code == 200
    assert b"".join(resp.streaming_content) == PDF
    assert resp["Content-Type"] == "application/pdf"
    assert "attachment" in resp["Content-Disposition"]
    assert AuditRecord.objects.filter(action="download_licence", actor=risk_officer).count() == 1
    assert client.get(f"/verification/{v.pk}/document/evidence/").status_code == 404
    assert client.get(f"/verification/{v.pk}/document/passwd/").status_code == 404


def test_reveal_service_refuses_without_permission(user):
    """R-ACC-5: the service itself refuses staff without the permission."""
    from django.core.exceptions import PermissionDenied

    v = submit_individual(user)
    with pytest.raises(PermissionDenied):
        services.reveal_identity(v, actor=StaffFactory())
    with pytest.raises(PermissionDenied):
        services.read_document(v, "licence", actor=UserFactory())
    assert not AuditRecord.objects.filter(action__startswith="view").exists()


def test_user_admin_shows_verifications_masked(client, user, cs_agent):
    """R-ACC-5: the user's page in admin lists their verifications with masked numbers."""
    submit_individual(user, id_number=NUMBER, name="Li Ming")
    client.force_login(grant(cs_agent, "accounts.view_user", "accounts.view_balanceaccount"))
    body = client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert MASKED in body
    assert NUMBER not in body
