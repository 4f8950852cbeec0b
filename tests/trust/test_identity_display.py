"""R-ACC-5: an ID number shows only its first and last four characters, and the birth
date only to staff holding the identity permission."""

from datetime import date

import pytest

from accounts.identity import make_resident_id, mask_number
from accounts.services import submit_verification
from tests.factories import StaffFactory, grant

pytestmark = pytest.mark.django_db

BIRTH = date(1990, 5, 17)
NUMBER = make_resident_id(BIRTH, region="110105", sequence=321)
BIRTH_SHOWN = ("1990-05-17", "May 17, 1990", "19900517", "1990年5月17日")


def test_mask_hides_everything_but_the_first_and_last_four():
    """R-ACC-5: `1101**********1234`: no region code past the province, no birth date."""
    masked = mask_number(NUMBER)
    assert masked == NUMBER[:4] + "*" * 10 + NUMBER[-4:]
    assert "19900517" not in masked and "0517" not in masked[:-4]
    assert mask_number("91110108MA01ABCD1X") == "9111**********CD1X"


def _submitted(user):
    return submit_verification(
        user, kind="individual", legal_name="Li Ming", id_number=NUMBER, phone="13800000000"
    )


def test_case_page_hides_the_birth_date_without_the_identity_permission(client, user):
    """R-ACC-5: a CS agent without accounts.view_identity_document sees no birth date on
    the verification case or in the queue; a holder of the permission sees it."""
    v = _submitted(user)
    agent = grant(StaffFactory(), "accounts.view_verification", "accounts.review_verification")
    client.force_login(agent)
    for url in ("/admin/accounts/verification/", f"/admin/accounts/verification/{v.pk}/change/"):
        body = client.get(url).content.decode()
        assert mask_number(NUMBER) in body
        assert NUMBER not in body
        assert not any(shown in body for shown in BIRTH_SHOWN), url
    officer = grant(StaffFactory(), "accounts.view_verification", "accounts.view_identity_document")
    client.force_login(officer)
    body = client.get(f"/admin/accounts/verification/{v.pk}/change/").content.decode()
    assert any(shown in body for shown in BIRTH_SHOWN)


def test_users_own_pages_show_the_short_mask(client, user):
    """R-ACC-5: the user's pages show the same short mask, never the birth date digits."""
    v = _submitted(user)
    client.force_login(user)
    for url in ("/verification/", f"/verification/{v.pk}/"):
        body = client.get(url).content.decode()
        assert mask_number(NUMBER) in body
        assert "19900517" not in body and NUMBER[:6] + "*" not in body
