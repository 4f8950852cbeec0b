"""Invisible characters and lenient numbers (issue 24 point 7), and the grant validity
form's seconds (point 8)."""

import pytest
from django.core.exceptions import ValidationError

from core.text import has_unsafe_characters, refuse_unsafe_characters
from tests.factories import StaffFactory, grant
from topups.models import Promotion

pytestmark = pytest.mark.django_db

SPOOFS = [
    "pay\u202egnp.exe",
    "a\u200bb",
    "x\u200dy",
    "\ufeffkey",
    "r\u2066id\u2069",
    "a\x00b",
    "a\x85",
]


@pytest.mark.parametrize("value", SPOOFS)
def test_the_one_check_refuses_controls_and_invisible_characters(value):
    """Issue 24 point 7: right-to-left overrides, zero-width characters, isolates, the BOM
    and control characters are refused by the one validator in core."""
    assert has_unsafe_characters(value)
    with pytest.raises(ValidationError) as exc:
        refuse_unsafe_characters(value)
    assert exc.value.code == "invisible_characters"


def test_ordinary_names_pass():
    for value in ("生产 key", "prod-key_01", "Ünïcode ok", "emoji 😀"):
        assert not has_unsafe_characters(value)


@pytest.mark.parametrize("value", ["pay\u202egnp", "zero\u200bwidth"])
def test_api_key_names_refuse_invisible_characters(user, client, value):
    """Issue 24 point 7: the key's name staff read says what it shows: the page's form and
    the service refuse spoofing characters; nothing is created."""
    from accounts.models import ApiKey
    from accounts.services import create_api_key

    with pytest.raises(ValidationError):
        create_api_key(user, name=value)
    client.force_login(user)
    response = client.post("/api-keys/", {"name": value})
    assert response.status_code in (200, 400)
    assert not ApiKey.objects.filter(account__user=user).exists()


@pytest.mark.parametrize("rid", ["r\u202e1", "r\u200b1"])
def test_request_ids_refuse_invisible_characters(gw, funded, rid):
    """Issue 24 point 7: a request id with an invisible character is refused like a control
    character, with the same stable code, on both gateway paths."""
    status, body = gw(
        "usage", {"request_id": rid, "api_key": funded.raw, "model": "m", "amount": "0.01"}
    )
    assert (status, body["code"]) == (400, "invalid_request_id")


def test_the_promotion_form_refuses_exponents(client):
    """Issue 24 point 7: the promotion form refuses `1e2` as the gateway does, instead of
    reading it as 100; a plain number is taken."""
    staff = grant(
        StaffFactory(), "topups.add_promotion", "topups.change_promotion", "topups.view_promotion"
    )
    client.force_login(staff)
    data = {
        "name": "Exp promo",
        "kind": "topup_discount",
        "priority": 0,
        "starts_at_0": "2026-12-01",
        "starts_at_1": "00:00:00",
        "account_kind": "any",
        "min_topup_0": "0",
        "min_topup_1": "CNY",
        "benefit_type": "fixed",
        "benefit_amount_0": "1e1",
        "benefit_amount_1": "CNY",
        "benefit_cap_1": "CNY",
        "reason": "launch",
        "core-auditrecord-content_type-object_id-TOTAL_FORMS": "0",
        "core-auditrecord-content_type-object_id-INITIAL_FORMS": "0",
    }
    response = client.post("/admin/topups/promotion/add/", data)
    assert response.status_code == 200 and not Promotion.objects.exists()
    assert "plain number" in response.content.decode()
    data["benefit_amount_0"] = "10"
    response = client.post("/admin/topups/promotion/add/", data)
    assert response.status_code == 302 and Promotion.objects.exists()


def test_the_grant_validity_form_takes_seconds(account):
    """Issue 24 point 8: 23:59:59, the natural end of a day, is taken and kept."""
    from django.utils import timezone

    from topups.forms import GrantValidityForm

    form = GrantValidityForm({"expires_at": "2030-12-31 23:59:59", "reason": "end of year"})
    assert form.is_valid(), form.errors
    at = timezone.localtime(form.cleaned_data["expires_at"])
    assert (at.hour, at.minute, at.second) == (23, 59, 59)
    assert "HH:MM:SS" in str(form.fields["expires_at"].help_text)
