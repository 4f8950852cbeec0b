"""The balance page in Chromium (R-LED-3, R-USE-4)."""

import pytest

from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage
from tests.factories import PASSWORD, UserFactory

from .conftest import cny, later


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_balance_page_in_browser(page):
    """R-LED-3/R-USE-4: buckets at 2 places with the exact figure on hover; the user
    sets a low-balance threshold and a bad one is refused."""
    user = UserFactory()
    account = user.balance_account
    credit_lot(account, cny("20.00"), channel="alipay", idempotency_key="L")
    grant_funds(account, cny("3"), kind="trial", expires_at=later(10), idempotency_key="T")
    charge_usage(account, cny("4.015"), request_id="r-1", model="gpt-x")

    page.goto("/login/?next=/billing/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/billing/")

    available = page.locator("#available .money")
    # 23 − 4.015 = 18.985: half-up gives 18.99 (banker's rounding would give 18.98)
    assert available.inner_text() == "¥18.99"
    assert available.get_attribute("title") == "¥18.985000"
    trial = page.locator("tr[data-bucket=trial] .money")
    assert (trial.inner_text(), trial.get_attribute("title")) == ("¥0.00", "¥0.000000")
    cash = page.locator("tr[data-bucket=cash] .money")
    assert (cash.inner_text(), cash.get_attribute("title")) == ("¥18.99", "¥18.985000")
    assert "gpt-x" in page.locator("#statement").inner_text()
    assert "Trial funds" in page.locator("#grants").inner_text()

    page.fill("input[name=threshold]", "5.001")
    page.click("#threshold button[type=submit]")
    assert "decimal places" in page.locator("#threshold").inner_text()
    page.fill("input[name=threshold]", "5.00")
    page.click("#threshold button[type=submit]")
    page.wait_for_selector(".msg")
    assert "updated" in page.locator(".messages").inner_text()
    account.refresh_from_db()
    assert account.low_balance_threshold == cny("5.00")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_void_grant_flow_in_browser(page):
    """R-ADM-2/R-LED-1: a risk officer voids a trial grant from the admin list, giving a
    reason; the grant ends, its money returns to promotion expense, the books reconcile."""
    from billing.models import Grant
    from billing.services.reconcile import reconcile
    from tests.factories import StaffFactory, grant

    owner = UserFactory()
    g = grant_funds(
        owner.balance_account, cny("3"), kind="trial", expires_at=later(), idempotency_key="G"
    )
    risk = grant(StaffFactory(), "billing.view_grant", "billing.void_grant")

    page.goto("/admin/login/?next=/admin/billing/grant/")
    page.fill("input[name=username]", risk.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/billing/grant/")
    page.check(f"input[name=_selected_action][value='{g.pk}']")
    page.select_option("select[name=action]", "void_selected")
    page.click("button[name=index]")
    page.fill("textarea[name=reason]", "granted twice by mistake")
    page.click("input[type=submit][value=Void]")
    page.wait_for_selector(".messagelist")
    assert "Voided 1 grant" in page.locator(".messagelist").inner_text()
    assert Grant.objects.get(pk=g.pk).state == "voided"
    assert reconcile(owner.balance_account).ok


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language,locale", [("zh-hans", "zh-CN"), ("en", "en-US")])
def test_events_of_a_line_and_pending_calls_on_a_phone(browser, live_server, language, locale):
    """R-USE-5 / R-ADM-6: a settlement of many calls shows its first calls and a link to
    the rest, pending calls are listed and taken off available; both pages pass axe-core
    and fit a 390 px screen, in Chinese and in English."""
    from axe_playwright_python.sync_playwright import Axe

    from accounts.services import create_api_key
    from billing.selectors import EVENTS_PER_LINE
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage
    from billing.services.settlement import run_settler

    user = UserFactory(language=language)
    account = user.balance_account
    credit_lot(account, cny("20.00"), channel="alipay", idempotency_key="L")
    _key, raw = create_api_key(user, name="phone")
    ref = resolve_api_keys([raw])[raw]
    record_usage([ReportedUsage(f"line-{n}", ref, "qwen-max", 100_000) for n in range(8)])
    run_settler(seconds=0)
    record_usage([ReportedUsage(f"wait-{n}", ref, "qwen-max", 500_000) for n in range(2)])

    context = browser.new_context(
        base_url=live_server.url, locale=locale, viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    axe = Axe()
    try:
        page.goto("/login/?next=/billing/")
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("main form [type=submit]")
        page.wait_for_url("**/billing/")
        # 20 − 0.80 settled − 1.00 pending
        assert page.locator("#available .money").get_attribute("title") == "¥18.200000"
        assert page.locator("#pending-events .pending-event").count() == 2
        assert page.locator("#statement li.event").count() == EVENTS_PER_LINE
        pages = {"balance-events": page.url}
        page.click("#statement a.more-events")
        page.wait_for_selector("#line-events")
        assert page.locator("#line-events li.event").count() == 8
        pages["line-events"] = page.url
        problems = []
        for name, url in pages.items():
            page.goto(url)
            serious = [
                v
                for v in axe.run(page).response["violations"]
                if v["impact"] in {"serious", "critical"}
            ]
            if serious:
                problems.append(f"{name} [{language}]: {[v['id'] for v in serious]}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 1:
                problems.append(f"{name} [{language}]: scrolls sideways by {overflow}px")
        assert not problems, problems
    finally:
        context.close()
