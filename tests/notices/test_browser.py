import pytest

from notices.models import EmailOptOut
from tests.factories import PASSWORD, UserFactory, agreement_notice


@pytest.fixture
def async_env(monkeypatch):
    """The shared browser fixture sets DJANGO_ALLOW_ASYNC_UNSAFE for good; scope it to this
    test so later subprocesses (manage.py check --deploy) don't inherit it."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_notice_pages_in_the_browser(async_env, page):
    """R-NOT-1: the user sees notices with the unread count, reads one, sets preferences."""
    user = UserFactory(phone="")
    for i in range(2):
        agreement_notice(user, f"news-{i}")
    page.goto("/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert page.inner_text("#unread-count") == "2"
    page.click("#nav-notices")
    assert page.locator("tr.notice.unread").count() == 2
    page.locator("tr.notice.unread button.mark-read").first.click()
    assert page.inner_text("#unread-count") == "1"
    assert page.locator("tr.notice.unread").count() == 1
    page.click("text=Service agreement news-0")
    assert "Terms news-0" in page.inner_text(".notice-body")
    assert page.locator("#unread-count").count() == 0
    page.click("text=All notices")
    page.click("text=Email preferences")
    assert page.is_disabled("input[name=required-service_stopped]")
    page.uncheck("input[name=topup_credited]")
    page.click("#preferences-form button[type=submit]")
    assert "preferences are saved" in page.content()
    assert not page.is_checked("input[name=topup_credited]")
    assert EmailOptOut.objects.filter(user=user, kind="topup_credited").exists()
