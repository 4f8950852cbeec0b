"""Chinese first (R-ADM-6): the language switcher, the saved choice, `<html lang>`."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_html_lang_follows_the_language_of_the_page(client):
    """R-ADM-6: `<html lang>` says which language the page is in."""
    chinese = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert '<html lang="zh-hans">' in chinese.content.decode()
    assert "登录" in chinese.content.decode()
    english = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="en-US")
    assert '<html lang="en">' in english.content.decode()


def test_the_switcher_saves_the_choice_for_the_signed_in_user(client, user):
    """R-ADM-6: the choice is remembered for the user, not only in this browser."""
    client.force_login(user)
    response = client.post(
        reverse("switch_language"), {"language": "zh-hans", "next": reverse("billing:balance")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("billing:balance")
    user.refresh_from_db()
    assert user.language == "zh-hans"
    # Another device: no cookie, an English browser; the saved choice still applies.
    other = client.__class__()
    other.force_login(user)
    page = other.get(reverse("billing:balance"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="zh-hans">' in page and "余额明细" in page


def test_an_unknown_language_changes_nothing(client, user):
    """R-ADM-6: a forged language code is ignored; the saved choice stays."""
    client.force_login(user)
    before = user.language
    client.post(reverse("switch_language"), {"language": "xx", "next": "/"})
    user.refresh_from_db()
    assert user.language == before


def test_the_switcher_never_redirects_off_site(client):
    """A forged `next` does not turn the switcher into an open redirect."""
    response = client.post(
        reverse("switch_language"), {"language": "en", "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and "evil.example" not in response["Location"]


def test_every_user_page_offers_the_switcher(client, user):
    """R-ADM-6: the switcher is on every page (it lives in the base template)."""
    client.force_login(user)
    for name in ("home", "billing:balance", "topups:start", "notices:list"):
        page = client.get(reverse(name), HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert 'id="language-switcher"' in page and "简体中文" in page, name


def test_signing_up_in_chinese_keeps_chinese_for_pages_and_notices(client):
    """R-ADM-6: the language of the sign-up page is saved for the new user."""
    from accounts.models import User

    response = client.post(
        reverse("accounts:signup"),
        {"email": "xin@example.com", "password": "Qx7!vB9#kLm2"},
        HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9",
    )
    assert response.status_code == 302
    assert User.objects.get(email="xin@example.com").language == "zh-hans"
    # issue 13: sign-up sends everyone to log in (no account enumeration), in Chinese
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "请用邮箱和密码登录" in page
    assert client.login(username="xin@example.com", password="Qx7!vB9#kLm2")
    page = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="zh-hans">' in page


def test_form_labels_and_errors_are_chinese(client):
    """R-ADM-6: form labels and validation messages reach a Chinese visitor in Chinese."""
    page = client.post(
        reverse("accounts:signup"),
        {"email": "not-an-email", "password": "x"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    ).content.decode()
    assert "邮箱" in page and "密码" in page


def test_chinese_is_the_default_language(client, settings):
    """R-ADM-6: a visitor whose browser names no language we have gets Simplified Chinese."""
    import config.settings as configured

    assert configured.LANGUAGE_CODE == "zh-hans"
    settings.LANGUAGE_CODE = configured.LANGUAGE_CODE
    page = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert '<html lang="zh-hans">' in page and "登录" in page


def test_every_page_says_which_time_zone_its_times_are_in(client, user):
    """Times are shown in Asia/Shanghai and the page says so."""
    client.force_login(user)
    page = client.get(reverse("billing:balance"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Asia/Shanghai, UTC+8" in page


def test_a_new_user_reads_chinese_unless_they_choose_otherwise(monkeypatch):
    """R-ADM-6: Chinese first: a user created without a language choice gets zh-hans,
    and their notices come in Chinese."""
    from accounts.models import User
    from notices.models import Notice
    from notices.services import send_notice

    monkeypatch.undo()  # drop the suite's English default for this test
    user = User.objects.create_user(email="new-zh@example.com", password="Qx7!vB9#kLm2")
    assert user.language == "zh-hans"
    send_notice(
        user=user, kind="refund_paid", context={"request": 1, "amount": "1.00"}, dedupe_key="zh-1"
    )
    assert any("\u4e00" <= ch <= "\u9fff" for ch in Notice.objects.get(user=user).subject)
