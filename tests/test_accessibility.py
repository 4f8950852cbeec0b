"""Every user page, in both languages, on a 390 px phone screen: axe-core finds no serious
or critical accessibility violation and nothing scrolls sideways (issue 15, R-ADM-6).
Screenshots are kept under var/test-artifacts/pages/ for review."""

from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.urls import reverse

from billing.services.settlement import charge_usage
from tests.factories import PASSWORD, cny
from tests.refunds.conftest import alipay_topup
from tests.refunds.conftest import ready_user as ready_user  # the fixture
from topups.services.orders import start_topup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
ARTEFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "pages"
SERIOUS = {"serious", "critical"}


def _pages(user):
    account = user.balance_account
    paid = alipay_topup(user, cny("50"))
    charge_usage(account, cny("1.234567"), request_id="a11y-call", model="qwen-max")
    unpaid = start_topup(user, cny("20"), channel="bank")
    return {
        "home": reverse("home"),
        "balance": reverse("billing:balance"),
        "topup-start": reverse("topups:start"),
        "topup-history": reverse("topups:history"),
        "topup-paid": reverse("topups:detail", args=[paid.pk]),
        "topup-unpaid": reverse("topups:detail", args=[unpaid.pk]),
        "refunds": reverse("refunds:index"),
        "invoices": reverse("invoices:index"),
        "disputes": reverse("disputes:index"),
        "verification": reverse("accounts:verification"),
        "api-keys": reverse("accounts:api_keys"),
        "agreement": reverse("accounts:agreement"),
        "notices": reverse("notices:list"),
        "notice-preferences": reverse("notices:preferences"),
    }


def _check(page, name, language, axe):
    problems = []
    results = axe.run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
    if serious:
        problems.append(f"{name} [{language}]: " + results.generate_snapshot())
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        problems.append(f"{name} [{language}]: scrolls sideways by {overflow}px")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.{language}.png"), full_page=True)
    return problems


@pytest.mark.parametrize("language,locale", [("zh-hans", "zh-CN"), ("en", "en-US")])
def test_user_pages_are_accessible_on_a_phone(browser, live_server, ready_user, language, locale):
    """R-ADM-6: every user page passes axe-core (no serious or critical violation) and fits
    a 390 px screen, in Chinese and in English."""
    ready_user.language = language
    ready_user.save(update_fields=["language"])
    pages = _pages(ready_user)
    context = browser.new_context(base_url=live_server.url, locale=locale, viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(15000)
    axe = Axe()
    problems = []
    try:
        for name, path in (
            ("login", reverse("accounts:login")),
            ("signup", reverse("accounts:signup")),
        ):
            page.goto(path)
            assert page.locator("html").get_attribute("lang") == (
                "zh-hans" if language == "zh-hans" else "en"
            )
            problems += _check(page, name, language, axe)
        page.goto(reverse("accounts:login"))
        page.fill("input[name=username]", ready_user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("main form [type=submit]")
        page.wait_for_url(f"{live_server.url}{reverse('home')}")
        for name, path in pages.items():
            response = page.goto(path)
            assert response.status == 200, (name, response.status)
            assert page.locator("html").get_attribute("lang") == language
            problems += _check(page, name, language, axe)
    finally:
        context.close()
    assert not problems, "\n".join(problems)
