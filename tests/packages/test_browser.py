"""Setting a spend limit and buying a resource package in Chromium, in both languages
(R-USE-7, R-PKG-2, R-ADM-6)."""

import pytest

from accounts.services import create_api_key
from billing.models import PackageHolding, SpendLimit
from billing.services.ledger import credit_lot
from tests.factories import PASSWORD, UserFactory, cny

from .helpers import make_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}
WORDS = {
    "zh-hans": {"saved": "消费限额已保存", "bought": "资源包购买成功", "poor": "余额不足"},
    "en": {"saved": "Spend limit saved", "bought": "Package bought", "poor": "does not cover"},
}


def _page(browser, live_server, user, language):
    user.language = language
    user.save(update_fields=["language"])
    context = browser.new_context(base_url=live_server.url, locale=LOCALES[language])
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto("/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main [type=submit]")
    page.wait_for_load_state()
    return context, page


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_user_caps_a_keys_monthly_spend(browser, live_server, language):
    """R-USE-7: from the key page to the limits page; a bad amount is a form error,
    a good one is saved and shown with the spend against it."""
    user = UserFactory(phone="")
    key, _raw = create_api_key(user, name="prod")
    context, page = _page(browser, live_server, user, language)
    try:
        page.goto(f"/billing/limits/?key={key.pk}")
        assert page.locator("html").get_attribute("lang") == language
        page.select_option("#id_period", "month")
        page.fill("#id_amount", "12.345")
        page.click("#set-limit button[type=submit]")
        assert page.locator(".errorlist").count() >= 1
        assert not SpendLimit.objects.exists()
        page.fill("#id_amount", "50.00")
        page.click("#set-limit button[type=submit]")
        page.wait_for_selector(".messages")
        assert WORDS[language]["saved"] in page.inner_text(".messages")
        assert "¥50.00" in page.inner_text("#limit-table")
        lim = SpendLimit.objects.get()
        assert (lim.api_key_id, lim.limit_micro, lim.period) == (key.pk, 50_000_000, "month")
    finally:
        context.close()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_user_buys_a_package(browser, live_server, language):
    """R-PKG-2: the packages page in the user's language; a refusal is a clear message;
    buying moves the price and shows the package."""
    user = UserFactory(phone="")
    make_package()
    context, page = _page(browser, live_server, user, language)
    try:
        page.goto("/billing/packages/")
        assert page.locator("html").get_attribute("lang") == language
        name = "GLM 资源包" if language == "zh-hans" else "GLM package"
        assert name in page.inner_text("#catalogue")
        page.click("#catalogue button[type=submit]")
        page.wait_for_selector(".messages")
        assert WORDS[language]["poor"] in page.inner_text(".messages")
        credit_lot(user.balance_account, cny("20"), channel="alipay", idempotency_key="L")
        page.goto("/billing/packages/")
        page.click("#catalogue button[type=submit]")
        page.wait_for_selector(".messages")
        assert WORDS[language]["bought"] in page.inner_text(".messages")
        assert "¥10.00" in page.inner_text("#holdings")
        assert page.inner_text("#available") == "¥12.00"
        assert PackageHolding.objects.filter(account=user.balance_account).count() == 1
    finally:
        context.close()
