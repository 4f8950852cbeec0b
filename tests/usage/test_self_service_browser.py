"""The user's own account, usage page and statement in a real browser, in both languages,
on a 390 px phone and a 1280 px screen (issue 22, R-ADM-6): a forgotten password is
recovered alone through the emailed link, the password changed, the profile saved; the
usage page and the statement pass axe-core, fit the screen, and never break an amount or a
time across lines."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.services import create_api_key
from billing.models import DailyUsage
from billing.services.ledger import credit_lot
from billing.services.settlement import charge_usage
from notices.models import Notice
from tests.factories import PASSWORD, cny
from tests.refunds.conftest import ready_user as ready_user  # the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTEFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "issue22"
SERIOUS = {"serious", "critical"}
RESET = re.compile(r"(/password/reset/[^/\s]+/[^/\s]+/)")
NEW_PASSWORD = "N3w-browser-pass!"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


def _check(page, name, tag, axe):
    problems = []
    results = axe.run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
    if serious:
        problems.append(f"{name} [{tag}]: " + results.generate_snapshot())
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        problems.append(f"{name} [{tag}]: scrolls sideways by {overflow}px")
    # an amount or a time that wraps is drawn as more than one box
    broken = page.evaluate(
        "[...document.querySelectorAll('main .money, main time')]"
        ".filter(e => e.getClientRects().length > 1).map(e => e.textContent)"
    )
    if broken:
        problems.append(f"{name} [{tag}]: broken across lines: {broken}")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.{tag}.png"), full_page=True)
    return problems


def _seed(user):
    account = user.balance_account
    credit_lot(account, cny("1234.5"), channel="alipay", idempotency_key="b22-lot")
    key, _raw = create_api_key(user, name="laptop")
    charge_usage(key, cny("1.234567"), request_id="b22-call", model="qwen-max-longname-2026")
    today = timezone.localdate()
    DailyUsage.objects.bulk_create(
        DailyUsage(
            account=account,
            day=today - timedelta(days=d),
            model=model,
            api_key=key if d % 2 else None,
            calls=120 + d,
            amount_micro=12_345_678 * (d + 1),
            input_tokens=1_234_567,
            output_tokens=345_678,
        )
        for d in range(30)
        for model in ("glm-4", "deepseek-chat")
    )


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("language,locale", [("zh-hans", "zh-CN"), ("en", "en-US")])
def test_recover_change_profile_usage_and_statement(
    browser, live_server, ready_user, language, locale, size
):
    """R-ADM-6 / R-NOT-1: reset by emailed link, log in with it, change the password,
    save the profile, read usage by day/model/key and the statement: axe-core clean, no
    sideways scroll, no amount or time broken, in Chinese and English, 390 and 1280 px."""
    ready_user.language = language
    ready_user.save(update_fields=["language"])
    _seed(ready_user)
    tag = f"{language}.{size}"
    context = browser.new_context(base_url=live_server.url, locale=locale, viewport=SIZES[size])
    page = context.new_page()
    page.set_default_timeout(15000)
    axe = Axe()
    problems = []
    try:
        page.goto(reverse("accounts:login"))
        page.click("#forgot-password")
        problems += _check(page, "password-reset", tag, axe)
        page.fill("input[name=email]", ready_user.email)
        page.click("#password-reset [type=submit]")
        page.wait_for_selector("#password-reset-sent")
        problems += _check(page, "password-reset-sent", tag, axe)
        notice = Notice.objects.get(user=ready_user, kind="password_reset")
        assert ("重置" in notice.subject) == (language == "zh-hans")
        link = RESET.search(notice.body).group(1)
        page.goto(link)
        page.wait_for_selector("#password-reset-confirm")
        problems += _check(page, "password-reset-confirm", tag, axe)
        page.fill("input[name=new_password1]", NEW_PASSWORD)
        page.fill("input[name=new_password2]", NEW_PASSWORD)
        page.click("#password-reset-confirm [type=submit]")
        page.wait_for_selector("#password-reset-complete")
        page.goto(link)  # spent: the same link cannot be used again
        page.wait_for_selector("#password-reset-invalid")

        page.goto(reverse("accounts:login"))
        page.fill("input[name=username]", ready_user.email)
        page.fill("input[name=password]", NEW_PASSWORD)
        page.click("main form [type=submit]")
        page.wait_for_url(f"{live_server.url}{reverse('home')}")

        page.goto(reverse("accounts:profile"))
        problems += _check(page, "profile", tag, axe)
        page.fill("#profile-details input[name=phone]", "13800138000")
        page.click("#save-profile")
        page.wait_for_selector(".msg.success")
        page.goto(reverse("accounts:password_change"))
        problems += _check(page, "password-change", tag, axe)
        page.fill("input[name=old_password]", NEW_PASSWORD)
        page.fill("input[name=new_password1]", PASSWORD + "x")
        page.fill("input[name=new_password2]", PASSWORD + "x")
        page.click("#password-change [type=submit]")
        page.wait_for_selector("#profile-security")

        for by in ("day", "model", "key"):
            response = page.goto(f"{reverse('billing:usage')}?by={by}")
            assert response.status == 200
            assert page.locator("#usage-chart svg").count() == 1
            assert page.locator("#usage-table tbody tr").count() >= 2
            problems += _check(page, f"usage-{by}", tag, axe)
        page.goto(reverse("billing:balance"))
        assert "¥" in page.inner_text("#statement")
        problems += _check(page, "statement", tag, axe)
    finally:
        context.close()
    assert not problems, "\n".join(problems)
