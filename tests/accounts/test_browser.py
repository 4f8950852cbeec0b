"""Key user and staff flows in a real browser (Playwright + Debian's Chromium)."""

import re
from datetime import date

import pytest

from accounts.identity import make_resident_id
from accounts.models import ApiKey, ApiKeyState, Verification, VerificationState
from tests.factories import PASSWORD, StaffFactory, UserFactory, grant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, email, path="/login/"):
    page.goto(path)
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")


def test_signup_verify_and_cs_approves(page, browser, live_server):
    """R-ACC-2: sign up, submit an individual verification, CS approves in admin, user sees it."""
    page.goto("/signup/")
    page.fill("input[name=email]", "newcomer@example.com")
    page.fill("input[name=phone]", "13800001111")
    page.fill("input[name=password]", "Xy9!long-pass-word")
    page.click("form.card button[type=submit]")
    # issue 13: sign-up answers the same for a new or a known address, then one logs in
    page.wait_for_url(f"{live_server.url}/login/")
    page.fill("input[name=username]", "newcomer@example.com")
    page.fill("input[name=password]", "Xy9!long-pass-word")
    page.click("form [type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    # issue 13: the address is verified by the link mailed at sign-up before anything else
    from accounts.services.registration import email_verification_body
    from notices.models import Notice

    notice = Notice.objects.get(user__email="newcomer@example.com", kind="email_verification")
    body = email_verification_body(notice)  # the email's body, as sent (issue 24)
    page.goto(re.search(r"/verify-email/[^/\s]+/", body).group(0))
    page.click("#confirm-email")
    page.goto("/")
    page.click("nav >> text=Verification")
    page.click("text=As an individual")
    number = make_resident_id(date(1991, 4, 12), sequence=42)
    page.fill("input[name=legal_name]", "Li Ming")
    page.fill("input[name=id_number]", number)
    page.click("text=Submit for review")
    state = page.locator("[data-testid=verification-state]")
    assert state.inner_text() == "Submitted (awaiting review)"
    body = page.content()
    assert number not in body and number[-4:] in body  # masked on the page

    cs = grant(
        StaffFactory(email="cs@example.com"),
        "accounts.view_verification",
        "accounts.review_verification",
        "core.view_auditrecord",
    )
    staff_ctx = browser.new_context(base_url=live_server.url, locale="en-US")
    staff = staff_ctx.new_page()
    staff.set_default_timeout(15000)
    try:
        _login(staff, cs.email, "/admin/login/")
        staff.goto("/admin/accounts/verification/?state__exact=submitted&q=newcomer")
        staff.click("#result_list tbody tr th a, #result_list tbody tr td a")
        assert number not in staff.content()
        staff.click("a[data-transition=approve]")
        staff.fill("textarea[name=reason]", "Name and number match the card")
        staff.click("input[type=submit]")
        staff.wait_for_selector("text=Approve: done.")
        assert "Name and number match the card" in staff.content()  # history inline
    finally:
        staff_ctx.close()

    page.reload()
    assert page.locator("[data-testid=verification-state]").inner_text() == "Approved"
    v = Verification.objects.get(user__email="newcomer@example.com")
    assert v.state == VerificationState.APPROVED and v.reviewed_by_id == cs.pk


def test_api_key_created_shown_once_and_revoked(page):
    """R-ACC-6: create a key, see the secret once, revoke it."""
    user = UserFactory(email="keys@example.com")
    _login(page, user.email)
    page.click("nav >> text=API keys")
    page.fill("input[name=name]", "laptop")
    page.click("text=Create key")
    secret = page.locator("[data-testid=fresh-secret]").inner_text().strip()
    key = ApiKey.objects.get(account__user=user)
    assert secret.startswith(key.prefix)
    page.goto("/api-keys/")  # the list again (a GET): the secret is gone for good
    assert page.locator("[data-testid=fresh-secret]").count() == 0
    assert secret not in page.content()
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"#key-{key.pk} >> text=Revoke")
    page.wait_for_selector(f"#key-{key.pk} >> text=Revoked by the user")
    key.refresh_from_db()
    assert key.state == ApiKeyState.REVOKED
