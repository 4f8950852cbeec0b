"""The main flows in the browser, in Chinese and in English (issue 15, R-ADM-6): a user
tops up through the sandbox cashier and reads the result; staff open the workbench and
a queue. Screenshots are kept under var/test-artifacts/flows/."""

from pathlib import Path

import pytest
from django.conf import settings

from accounts.identity import make_resident_id
from accounts.services import submit_verification
from tests.factories import PASSWORD, StaffFactory, UserFactory
from tests.topups.conftest import accept, make_agreement, verify

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTEFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "flows"
WORDS = {
    "zh-hans": {"paid": "已支付", "done": "已完成：款项已计入您的余额。", "queue": "待审核"},
    "en": {
        "paid": "Paid",
        "done": "Done: the money is in your balance.",
        "queue": "Waiting for review",
    },
}
LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}


def _shot(page, name):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def _login(page, email, path="/login/"):
    page.goto(path)
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main [type=submit], #content [type=submit]")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_user_tops_up_in_their_language(browser, live_server, user, language):
    """R-TOP-1, R-ADM-6: top-up page, cashier, result page and balance, all in the user's
    language, the amount shown one way."""
    agreement = make_agreement()
    verify(user)
    accept(user, agreement)
    user.language = language
    user.save(update_fields=["language"])
    context = browser.new_context(base_url=live_server.url, locale=LOCALES[language])
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        _login(page, user.email)
        page.goto("/topups/")
        assert page.locator("html").get_attribute("lang") == language
        page.fill("#id_amount", "1234.50")
        page.check("input[name=channel][value=alipay]")
        _shot(page, f"topup-form.{language}")
        page.click("#topup-form button[type=submit]")
        page.click("#cashier-pay")
        page.wait_for_selector("#topup-state")
        assert page.inner_text("#topup-state") == WORDS[language]["paid"]
        assert page.inner_text("#topup-next") == WORDS[language]["done"]
        assert page.inner_text("#balance-available") == "¥1,234.50"
        _shot(page, f"topup-paid.{language}")
        page.goto("/billing/")
        assert "¥1,234.50" in page.inner_text("#statement")
        _shot(page, f"balance.{language}")
    finally:
        context.close()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_staff_open_the_workbench_and_a_queue_in_their_language(browser, live_server, language):
    """R-ADM-6: the admin home shows the workbench in the staff member's language and its
    number opens the filtered verification queue."""
    applicant = UserFactory(phone="")
    submit_verification(
        applicant,
        kind="individual",
        legal_name="Li Ming",
        id_number=make_resident_id(__import__("datetime").date(1990, 5, 17), sequence=321),
        phone="13800138000",
    )
    staff = StaffFactory(is_superuser=True, language=language)
    context = browser.new_context(base_url=live_server.url, locale=LOCALES[language])
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        _login(page, staff.email, path="/admin/login/")
        page.wait_for_selector("#workbench")
        row = page.locator("#workbench tr", has_text=WORDS[language]["queue"]).first
        assert row.locator(".count").inner_text() == "1"
        _shot(page, f"workbench.{language}")
        row.locator(".count").click()
        page.wait_for_selector("#result_list")
        assert applicant.email in page.inner_text("#result_list")
        _shot(page, f"verification-queue.{language}")
    finally:
        context.close()
