"""Email verification before a new account can act (issue 13, R-ACC-1 / R-ACC-2).

A public sign-up is unverified and is sent one link; until the link is opened the
account may log in and look, but top-ups, API keys, refunds, invoices and real-name
verification are refused (in the service and on the page).
"""

import contextlib
import re
import types
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.identity import make_resident_id
from accounts.models import ApiKey, User, Verification, VerificationKind
from core.models import AuditRecord
from notices.models import Notice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"(/verify-email/[^/\s]+/)")


@contextlib.contextmanager
def travel(moment):
    """Move the clock the portal and the link signer read to `moment` (no sleeping)."""
    import django.core.signing as signing

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: moment)
        mp.setattr(signing, "time", types.SimpleNamespace(time=moment.timestamp))
        yield


def _link_of(user):
    """The link in the email as it is sent (issue 24: minted then, never stored)."""
    from accounts.services.registration import email_verification_body

    notice = Notice.objects.filter(user=user, kind="email_verification").latest("created_at")
    return LINK.search(email_verification_body(notice)).group(1)


@pytest.fixture
def fresh(db):
    """A user who signed up and has not opened the link yet (English pages)."""
    return UserFactory(email_verified_at=None, language="en", phone="")


@pytest.fixture
def fresh_client(fresh):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(fresh)
    return client


def _code(exc_info):
    return {e.code for e in exc_info.value.error_list}


# ---------------------------------------------------------------- sign-up and the link
def test_signup_sends_one_verification_email_with_a_link(client):
    """Issue 13 / R-ACC-1: a sign-up opens an unverified account and sends it one link."""
    resp = client.post("/signup/", {"email": "new@example.com", "password": "Xy9!long-pass-word"})
    assert (resp.status_code, resp["Location"]) == (302, "/login/")
    user = User.objects.get(email="new@example.com")
    assert user.email_verified_at is None
    notices = Notice.objects.filter(user=user)
    assert [n.kind for n in notices] == ["email_verification"]
    assert not LINK.search(notices[0].body) and "/verify-email/" not in str(notices[0].context)
    assert LINK.search(_link_of(user))  # only the email has it


def test_signup_with_a_known_address_sends_nothing_and_answers_the_same():
    """Issue 13: a taken address gets no mail that reveals the account; same answer."""
    existing = UserFactory(email="taken@example.com")
    before = Notice.objects.count()
    answers = []
    for email in ("taken@example.com", "other@example.com"):
        visitor = Client(HTTP_ACCEPT_LANGUAGE="en")
        resp = visitor.post("/signup/", {"email": email, "password": "Xy9!long-pass-word"})
        page = visitor.get(resp["Location"]).content.decode()
        answers.append((resp.status_code, resp["Location"], "open the link we sent" in page))
    assert answers[0] == answers[1] == (302, "/login/", True)
    assert not Notice.objects.filter(user=existing).exists()
    assert Notice.objects.count() == before + 1  # the new address's link only


def test_the_link_verifies_the_address_once(client, fresh):
    """Issue 13 / issue 24 point 4: opening the link shows a confirmation page and changes
    nothing (mail scanners open links); its button (a POST) marks the address verified;
    confirming again is harmless."""
    link = _link_of(fresh)
    resp = client.get(link)
    assert resp.status_code == 200 and resp.context["state"] == "confirm"
    fresh.refresh_from_db()
    assert fresh.email_verified_at is None
    resp = client.post(link)
    assert resp.status_code == 200 and resp.context["state"] == "verified"
    fresh.refresh_from_db()
    first = fresh.email_verified_at
    assert first is not None
    resp = client.post(link)
    assert resp.status_code == 200
    fresh.refresh_from_db()
    assert fresh.email_verified_at == first
    assert AuditRecord.objects.filter(action="verify_email", object_id=str(fresh.pk)).count() == 1


def test_an_expired_link_changes_nothing_and_offers_a_new_one(client, fresh, settings):
    """Issue 13: a link older than EMAIL_VERIFICATION_MAX_AGE_HOURS is refused clearly."""
    settings.EMAIL_VERIFICATION_MAX_AGE_HOURS = 48
    link = _link_of(fresh)
    with travel(timezone.now() + timedelta(hours=49)):
        resp = client.get(link, HTTP_ACCEPT_LANGUAGE="en")
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "problem-link_expired" in page
    assert reverse("accounts:resend_email_verification") in page
    fresh.refresh_from_db()
    assert fresh.email_verified_at is None


@pytest.mark.parametrize("damage", ["forged", "garbage", "other_address"])
def test_a_forged_link_changes_nothing(client, fresh, damage):
    """Issue 13: a tampered token, garbage, or a link for an address the user no longer
    has is refused (400) and the address stays unverified."""
    token = _link_of(fresh).split("/")[2]
    if damage == "forged":
        token = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    elif damage == "garbage":
        token = "not-a-token"
    else:
        User.objects.filter(pk=fresh.pk).update(email="changed@example.com")
    resp = client.get(f"/verify-email/{token}/")
    assert resp.status_code == 400
    assert "problem-link_invalid" in resp.content.decode()
    fresh.refresh_from_db()
    assert fresh.email_verified_at is None
    with pytest.raises(ValidationError) as exc:
        services.verify_email(token)
    assert _code(exc) == {"link_invalid"}


def test_resend_is_rate_limited(fresh_client, fresh):
    """Issue 13: a new link at most every two minutes and five a day; refusals send nothing."""
    url = reverse("accounts:resend_email_verification")
    assert fresh_client.get(url).status_code == 200
    count = lambda: Notice.objects.filter(user=fresh, kind="email_verification").count()  # noqa: E731
    assert count() == 1
    resp = fresh_client.post(url)  # right after the sign-up's link
    assert resp.status_code == 429
    assert count() == 1
    start = timezone.now()
    for step in range(1, 5):
        with travel(start + timedelta(minutes=3 * step)):
            assert fresh_client.post(url).status_code == 302
    assert count() == 5
    with travel(start + timedelta(minutes=30)):
        with pytest.raises(ValidationError) as exc:
            services.resend_email_verification(fresh)
        assert _code(exc) == {"too_many"}
        assert fresh_client.post(url).status_code == 429
    assert count() == 5
    with travel(start + timedelta(days=1, minutes=20)):
        assert fresh_client.post(url).status_code == 302
    assert count() == 6
    # the latest link works; an older one still does too while it is young
    assert Client().post(_link_of(fresh)).status_code == 200
    fresh.refresh_from_db()
    assert fresh.email_verified_at is not None
    with pytest.raises(ValidationError) as exc:
        services.resend_email_verification(fresh)
    assert _code(exc) == {"already_verified"}


def test_resend_needs_a_login(client):
    """Issue 13: an anonymous visitor cannot make the portal mail anyone."""
    before = Notice.objects.count()
    resp = client.post(reverse("accounts:resend_email_verification"))
    assert resp.status_code == 302 and "/login/" in resp["Location"]
    assert Notice.objects.count() == before


# ---------------------------------------------------------------- who is verified
def test_users_made_by_staff_scripts_and_factories_are_verified():
    """Issue 13: only the public sign-up creates unverified users."""
    assert UserFactory().email_verified_at is not None
    assert User.objects.create_user("staff-made@example.com", "x").email_verified_at is not None
    call_command("createsuperuser", email="root@example.com", interactive=False, verbosity=0)
    assert User.objects.get(email="root@example.com").email_verified_at is not None
    assert services.register_user(email="pub@example.com", password="x").email_verified_at is None


def test_demo_users_are_verified():
    """Issue 13: seed_demo's users (the user, the applicants, staff, the superuser) act."""
    from accounts import demo

    context = {"logins": [], "notes": []}
    demo.seed(context)
    emails = [email for _, email, _ in context["logins"]]
    assert emails and not User.objects.filter(email__in=emails, email_verified_at=None).exists()


def test_a_user_added_by_staff_in_the_admin_is_verified(client):
    """Issue 13: staff vouch for the address of a user they add."""
    admin = User.objects.create_superuser("boss@example.com", "x")
    client.force_login(admin)
    resp = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "added@example.com",
            "phone": "",
            "password1": "Xy9!long-pass-word",
            "password2": "Xy9!long-pass-word",
            "usable_password": "true",
            **{
                f"{prefix}-{field}": "0"
                for prefix in ("balance_account", "verifications")
                for field in ("TOTAL_FORMS", "INITIAL_FORMS")
            },
        },
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert User.objects.get(email="added@example.com").email_verified_at is not None


def test_the_migration_marks_existing_users_verified_when_they_joined():
    """Issue 13: users from before the rule count as verified at their date_joined."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("accounts.migrations.0006_email_verified_at")
    joined = timezone.now() - timedelta(days=400)
    old = UserFactory(email_verified_at=None, date_joined=joined)
    migration.mark_existing_verified(apps, None)
    old.refresh_from_db()
    assert old.email_verified_at == joined


# ---------------------------------------------------------------- an unverified user may not act
def test_unverified_user_can_log_in_and_see_pages(fresh_client):
    """Issue 13: the account can look around; home shows 'verify your email' first."""
    for name in ("home", "accounts:api_keys", "accounts:verification", "topups:start"):
        assert fresh_client.get(reverse(name)).status_code == 200, name
    page = fresh_client.get(reverse("home")).content.decode()
    resend = reverse("accounts:resend_email_verification")
    assert resend in page
    assert page.index("Verify your email address") < page.index("Verify your real name")


def test_home_says_nothing_once_verified(client):
    """Issue 13: a verified user's home page has no email item."""
    user = UserFactory(language="en")
    client.force_login(user)
    page = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert reverse("accounts:resend_email_verification") not in page


def test_api_key_refused(fresh, fresh_client):
    """Issue 13 / R-ACC-6: no API key before the address is verified."""
    with pytest.raises(ValidationError) as exc:
        services.create_api_key(fresh, name="k")
    assert _code(exc) == {"email_not_verified"}
    resp = fresh_client.post(reverse("accounts:api_keys"), {"name": "k"})
    assert resp.status_code == 400
    assert "Verify your email address first" in resp.content.decode()
    assert not ApiKey.objects.filter(account__user=fresh).exists()


def test_verification_submission_refused(fresh, fresh_client):
    """Issue 13 / R-ACC-2: no real-name verification before the address is verified."""
    number = make_resident_id(date(1990, 1, 1), sequence=321)
    with pytest.raises(ValidationError) as exc:
        services.submit_verification(
            fresh,
            kind=VerificationKind.INDIVIDUAL,
            legal_name="Li Ming",
            id_number=number,
            phone="13800000000",
        )
    assert _code(exc) == {"email_not_verified"}
    resp = fresh_client.post(
        "/verification/new/individual/",
        {"legal_name": "Li Ming", "id_number": number, "phone": "13800000001"},
    )
    assert resp.status_code == 200
    assert "Verify your email address first" in resp.content.decode()
    assert not Verification.objects.filter(user=fresh).exists()


def test_top_up_refused(fresh, fresh_client):
    """Issue 13 / R-TOP-1: the top-up preconditions list the unverified address, the
    order is refused, and the page links to a new link."""
    from topups.models import TopUp
    from topups.services.orders import start_topup
    from topups.services.preconditions import TopUpRefused, check_preconditions

    assert "email_not_verified" in {p.code for p in check_preconditions(fresh)}
    with pytest.raises(TopUpRefused) as exc:
        start_topup(fresh, "100.00", channel="alipay")
    assert "email_not_verified" in {p.code for p in exc.value.problems}
    assert not TopUp.objects.filter(account__user=fresh).exists()
    page = fresh_client.get(reverse("topups:start")).content.decode()
    assert "problem-email_not_verified" in page
    assert reverse("accounts:resend_email_verification") in page
    verified = UserFactory()
    assert "email_not_verified" not in {p.code for p in check_preconditions(verified)}


def test_refund_refused(fresh, fresh_client):
    """Issue 13 / R-REF-1: no refund request before the address is verified."""
    from refunds.models import RefundRequest
    from refunds.services.filing import submit_refund

    with pytest.raises(ValidationError) as exc:
        submit_refund(fresh, proofs=[], reason="why")
    assert _code(exc) == {"email_not_verified"}
    resp = fresh_client.post(reverse("refunds:index"), {"reason": "why"})
    assert resp.status_code == 400
    assert "Verify your email address first" in resp.content.decode()
    assert not RefundRequest.objects.filter(account__user=fresh).exists()


def test_invoice_refused(fresh, fresh_client):
    """Issue 13 / R-INV-1: no invoice request before the address is verified."""
    from invoices.models import InvoiceRequest
    from invoices.services.filing import submit_invoice

    with pytest.raises(ValidationError) as exc:
        submit_invoice(fresh, amount="10.00")
    assert _code(exc) == {"email_not_verified"}
    resp = fresh_client.post(reverse("invoices:index"), {"amount": "10.00"})
    assert resp.status_code == 400
    assert "Verify your email address first" in resp.content.decode()
    assert not InvoiceRequest.objects.filter(account__user=fresh).exists()


def test_opening_the_link_lets_the_user_act(fresh, fresh_client):
    """Issue 13: after the link, the same user creates an API key."""
    Client().post(_link_of(fresh))
    fresh.refresh_from_db()
    key, raw = services.create_api_key(fresh, name="k")
    assert key.pk and raw


def test_the_verification_pages_and_notice_speak_chinese(client):
    """Issue 13 / R-ADM-6: the notice, the link's pages, the home item and the top-up
    refusal are in Chinese for a Chinese user."""
    user = UserFactory(email_verified_at=None, language="zh-hans", phone="")
    notice = Notice.objects.get(user=user, kind="email_verification")
    assert "验证" in notice.subject and "小时内打开" in notice.body
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}
    page = client.get("/verify-email/forged/", **zh).content.decode()
    assert "此链接无效" in page and "重新发送链接" in page and "未做任何更改" in page
    client.force_login(user)
    page = client.get(reverse("accounts:resend_email_verification"), **zh).content.decode()
    assert "我们已向" in page
    page = client.get(reverse("home"), **zh).content.decode()
    assert "请验证您的邮箱地址" in page
    page = client.get(reverse("topups:start"), **zh).content.decode()
    assert "请先验证您的邮箱地址" in page
    resp = client.post(reverse("accounts:api_keys"), {"name": "k"}, **zh)
    assert "请先验证您的邮箱地址" in resp.content.decode()
    page = client.post(_link_of(user), **zh).content.decode()
    assert "您的邮箱地址已验证" in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_sign_up_open_the_link_and_the_top_up_page_stops_refusing(page, live_server):
    """Issue 13: sign up, see the top-up page refuse, open the link from the recorded
    email, and the top-up page no longer asks for it."""
    page.goto("/signup/")
    page.fill("input[name=email]", "linked@example.com")
    page.fill("input[name=password]", "Xy9!long-pass-word")
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/login/")
    page.fill("input[name=username]", "linked@example.com")
    page.fill("input[name=password]", "Xy9!long-pass-word")
    page.click("form [type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto("/topups/")
    assert page.locator(".problem-email_not_verified").count() == 1
    user = User.objects.get(email="linked@example.com")
    page.goto(_link_of(user))
    page.click("#confirm-email")  # issue 24: the link's page verifies on a POST
    assert page.locator("#email-verified").count() == 1
    page.goto("/topups/")
    assert page.locator(".problem-email_not_verified").count() == 0
    assert page.locator(".problem-not_verified").count() == 1  # the real-name step is next


def test_the_notice_staff_read_holds_no_usable_link(fresh, mailoutbox):
    """Issue 24 point 4: the stored notice (which CS, finance, risk and auditors read)
    has no verification link, only a sentence that it is in the email; the email itself,
    sent by the notice delivery, carries a freshly signed link that works."""
    from notices.services import deliver_notice

    notice = Notice.objects.get(user=fresh, kind="email_verification")
    assert "/verify-email/" not in notice.body + str(notice.context)
    assert "in the email" in notice.body
    assert deliver_notice(notice, now=timezone.now()) == "sent"
    (mail,) = mailoutbox
    link = LINK.search(mail.body).group(1)
    client = Client()
    client.get(link)  # a mail scanner's GET verifies nothing
    fresh.refresh_from_db()
    assert fresh.email_verified_at is None
    client.post(link)
    fresh.refresh_from_db()
    assert fresh.email_verified_at is not None
