"""Staff second factor (issue 13): with STAFF_OTP_REQUIRED, a staff member's password
alone does not open the admin; a TOTP code does (enrolment the first time)."""

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import PASSWORD, StaffFactory, UserFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def required(settings):
    settings.STAFF_OTP_REQUIRED = True


def _staff():
    return grant(StaffFactory(), "topups.confirm_remittance", "topups.view_topup")


def _enrol_code(client, staff):
    """Issue 24: another superuser issues the one-time enrolment code; the staff member
    types it, and only then is the authenticator's key made and shown."""
    from accounts.otp import issue_enrolment_code

    admin = StaffFactory(is_superuser=True)
    code = issue_enrolment_code(staff, actor=admin)
    return client.post("/staff/second-factor/", {"enrolment_code": code, "next": "/admin/"})


def _code(device):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_a_password_alone_does_not_open_the_admin(client, required):
    """Issue 13: after the password the admin sends staff to the second-factor page."""
    staff = _staff()
    assert client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    resp = client.get("/admin/topups/topup/")
    assert resp.status_code == 302
    assert resp["Location"].startswith("/staff/second-factor/")


def test_enrol_then_sign_in_with_a_code(client, required):
    """Issue 13: the first visit enrols an authenticator (its key is shown once), the
    right code opens the admin; a wrong code is refused; the next login asks again."""
    staff = _staff()
    client.force_login(staff)
    first = client.get("/staff/second-factor/?next=/admin/topups/topup/")
    assert first.context["needs_enrolment_code"] and not TOTPDevice.objects.exists()
    page = _enrol_code(client, staff)
    assert page.status_code == 200 and page.context["enrolling"]
    device = TOTPDevice.objects.get(user=staff)
    assert page.context["secret"] and not device.confirmed
    wrong = client.post("/staff/second-factor/", {"token": "000000", "next": "/admin/"})
    if _code(device) != "000000":
        assert wrong.status_code == 400
        assert client.get("/admin/topups/topup/").status_code == 302
        device.refresh_from_db()
        assert device.throttling_failure_count == 1  # django-otp slows guessing down
        device.throttle_reset()  # the back-off has passed
    ok = client.post(
        "/staff/second-factor/", {"token": _code(device), "next": "/admin/topups/topup/"}
    )
    assert ok.status_code == 302 and ok["Location"] == "/admin/topups/topup/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/topups/topup/").status_code == 200
    client.logout()
    client.force_login(staff)
    assert client.get("/admin/topups/topup/").status_code == 302
    again = client.get("/staff/second-factor/")
    assert not again.context["enrolling"] and not again.context["secret"]  # key shown once


def test_an_outside_next_is_ignored(client, required):
    """Issue 13: the page never redirects to another site."""
    staff = _staff()
    client.force_login(staff)
    _enrol_code(client, staff)
    device = TOTPDevice.objects.get(user=staff)
    resp = client.post(
        "/staff/second-factor/", {"token": _code(device), "next": "https://evil.example/"}
    )
    assert resp["Location"] == "/admin/"


def test_users_and_the_default_setting_are_unaffected(client, settings):
    """Issue 13: users never see it; with the setting off (development, demo, tests) staff
    open the admin with their password as before."""
    settings.STAFF_OTP_REQUIRED = False
    client.force_login(_staff())
    assert client.get("/admin/topups/topup/").status_code == 200
    settings.STAFF_OTP_REQUIRED = True
    client.force_login(UserFactory())
    assert client.get("/staff/second-factor/").status_code == 302


def test_the_second_factor_page_speaks_chinese(client, required):
    """R-ADM-6: the page is translated."""
    staff = _staff()
    staff.language = "zh-hans"
    staff.save(update_fields=["language"])
    client.force_login(staff)
    page = client.get("/staff/second-factor/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "第二重验证" in page and "登记码" in page
    page = _enrol_code(client, staff).content.decode()
    assert "密钥" in page


def test_a_password_alone_cannot_enrol_an_authenticator(client, required):
    """Issue 24 point 6: with only the password, no key is shown and no device can be
    confirmed; a wrong or self-issued enrolment code is refused; a code works once."""
    from django.core.exceptions import PermissionDenied

    from accounts.otp import issue_enrolment_code

    staff = _staff()
    client.force_login(staff)
    page = client.get("/staff/second-factor/")
    assert page.context["needs_enrolment_code"] and "secret" not in page.context
    assert client.post("/staff/second-factor/", {"token": "123456"}).status_code == 400
    bad = client.post("/staff/second-factor/", {"enrolment_code": "guess"})
    assert bad.status_code == 400 and not TOTPDevice.objects.exists()
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    with pytest.raises(PermissionDenied):
        issue_enrolment_code(staff, actor=staff)  # never one's own
    with pytest.raises(PermissionDenied):
        issue_enrolment_code(staff, actor=_staff())  # only a superuser issues them
    admin = StaffFactory(is_superuser=True)
    code = issue_enrolment_code(staff, actor=admin)
    assert client.post("/staff/second-factor/", {"enrolment_code": code}).context["secret"]
    client.logout()
    client.force_login(staff)
    again = client.post("/staff/second-factor/", {"enrolment_code": code})
    assert again.status_code == 400  # spent


def test_ops_metrics_and_gateway_docs_need_the_second_factor(client, required, settings):
    """Issue 24 point 6: in production a staff member who has not passed the second factor
    gets no /ops/metrics/ and no gateway docs or schema: sent to the second factor."""
    settings.METRICS_PUBLIC = False
    settings.GATEWAY_DOCS_PUBLIC = False
    client.force_login(_staff())
    for url in ("/ops/metrics/", "/api/v1/gateway/docs", "/api/v1/gateway/openapi.json"):
        resp = client.get(url)
        assert resp.status_code == 302, url
        assert resp["Location"].startswith("/staff/second-factor/"), url
