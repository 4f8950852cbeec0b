"""The user's own account (issue 22): password reset by email (signed, expiring,
single-use, the same answer for every address, lifting the login lockout), password
change ending other sessions, profile with email change re-verified, signing out
everywhere; every email a notice in the user's language (R-NOT-1, R-ADM-6)."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from notices.models import Notice
from tests.factories import UserFactory

RESET = re.compile(r"(/password/reset/[^/\s]+/[^/\s]+/)")
CHANGE = re.compile(r"(/email/change/[^/\s]+/)")
PASSWORD = "old-pass-123!"


@pytest.fixture
def person(db):
    user = UserFactory(phone="", email="ana@example.com", language="en")
    user.set_password(PASSWORD)
    user.save()
    return user


def login(email, password):
    c = Client()
    c.post(reverse("accounts:login"), {"username": email, "password": password})
    return c


def signed(client):
    return client.get(reverse("accounts:profile")).status_code == 200


def reset_link(user):
    notice = Notice.objects.filter(user=user, kind="password_reset").latest("id")
    return RESET.search(notice.body).group(1)


@pytest.mark.django_db
def test_reset_answers_the_same_for_unknown_addresses(client, person):
    """R-NOT-1: a reset link is a notice; an unknown address gets the same answer and nothing."""
    known = client.post(reverse("accounts:password_reset"), {"email": "ANA@example.com"})
    unknown = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert Notice.objects.filter(kind="password_reset").count() == 1
    assert client.get("/password_reset/").status_code in (301, 302)


@pytest.mark.django_db
def test_reset_link_works_once_and_cannot_be_forged(client, person):
    """R-NOT-1: the link sets a new password once; reused or forged it changes nothing."""
    client.post(reverse("accounts:password_reset"), {"email": person.email})
    link = reset_link(person)
    forged = link.rsplit("/", 2)[0] + "/abc-0123456789abcdef/"
    page = client.get(forged, follow=True)
    assert b"password-reset-invalid" in page.content
    page = client.get(link, follow=True)  # Django moves the token into the session
    form_url = page.redirect_chain[-1][0]
    new = {"new_password1": "N3w-pass-xyz!", "new_password2": "N3w-pass-xyz!"}
    done = client.post(form_url, new)
    assert done.status_code == 302
    person.refresh_from_db()
    assert person.check_password("N3w-pass-xyz!")
    again = Client().get(link, follow=True)
    assert b"password-reset-invalid" in again.content
    assert Notice.objects.filter(user=person, kind="security_alert").exists()


@pytest.mark.django_db
def test_reset_lifts_the_login_lockout(client, person, settings):
    """R-ADM-2 / issue 22: after too many wrong passwords, a reset lets the owner in again."""
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(person.email, "wrong-password")
    assert not signed(login(person.email, PASSWORD))
    client.post(reverse("accounts:password_reset"), {"email": person.email})
    page = client.get(reset_link(person), follow=True)
    client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "N3w-pass-xyz!", "new_password2": "N3w-pass-xyz!"},
    )
    assert signed(login(person.email, "N3w-pass-xyz!"))


@pytest.mark.django_db
def test_password_change_ends_other_sessions(person):
    """R-NOT-1: changing the password keeps this session, ends the others, and tells the user."""
    here, there = login(person.email, PASSWORD), login(person.email, PASSWORD)
    assert signed(here) and signed(there)
    response = here.post(
        reverse("accounts:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "N3w-pass-xyz!",
            "new_password2": "N3w-pass-xyz!",
        },
    )
    assert response.status_code == 302
    assert signed(here) and not signed(there)
    assert Notice.objects.filter(user=person, kind="security_alert").exists()


@pytest.mark.django_db
def test_sign_out_everywhere_needs_the_password(person):
    """Issue 22: every other session ends; a wrong password changes nothing."""
    here, there = login(person.email, PASSWORD), login(person.email, PASSWORD)
    here.post(reverse("accounts:sign_out_everywhere"), {"password": "nope"})
    assert signed(there)
    here.post(reverse("accounts:sign_out_everywhere"), {"password": PASSWORD})
    assert signed(here) and not signed(there)
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


@pytest.mark.django_db
def test_email_change_takes_effect_only_after_the_new_address_confirms(person):
    """R-NOT-1: the link goes to the new address; until it is opened the old one stays;
    it works once; the old address is told."""
    c = login(person.email, PASSWORD)
    c.post(reverse("accounts:profile"), {"action": "email", "email": "Ana.New@example.com"})
    person.refresh_from_db()
    assert person.email == "ana@example.com"
    notice = Notice.objects.get(user=person, kind="email_change")
    assert notice.context["to_email"] == "ana.new@example.com"
    link = CHANGE.search(notice.body).group(1)
    assert Client().get(link[:-3] + "xx/").status_code == 400
    assert Client().get(link).status_code == 200
    person.refresh_from_db()
    assert person.email == "ana.new@example.com" and person.email_verified_at
    assert Client().get(link).status_code == 400  # spent: the old address no longer matches
    alert = Notice.objects.get(user=person, kind="security_alert")
    assert alert.context["to_email"] == "ana@example.com"


@pytest.mark.django_db
def test_email_change_refuses_a_taken_address(person):
    """Issue 22: another account's address is a form error and nothing is sent."""
    UserFactory(email="taken@example.com")
    c = login(person.email, PASSWORD)
    data = {"action": "email", "email": "taken@example.com"}
    response = c.post(reverse("accounts:profile"), data)
    assert response.status_code == 400
    assert not Notice.objects.filter(kind="email_change").exists()


@pytest.mark.django_db
def test_profile_saves_phone_and_language_and_the_reset_mail_follows_it(client, person):
    """R-ADM-6: the language chosen on the profile is the language of the emails."""
    c = login(person.email, PASSWORD)
    data = {"action": "profile", "phone": "13800138000", "language": "zh-hans"}
    response = c.post(reverse("accounts:profile"), data)
    assert response.status_code == 302
    person = User.objects.get(pk=person.pk)
    assert person.phone == "13800138000" and person.language == "zh-hans"
    bad = {"action": "profile", "phone": "x", "language": "en"}
    assert c.post(reverse("accounts:profile"), bad).status_code == 400
    client.post(reverse("accounts:password_reset"), {"email": person.email})
    notice = Notice.objects.get(user=person, kind="password_reset")
    assert "重置" in notice.subject


@pytest.mark.django_db
def test_reset_links_are_rate_limited(client, person):
    """R-NOT-1: asking again at once sends no second link; the page answers the same."""
    first = client.post(reverse("accounts:password_reset"), {"email": person.email})
    second = client.post(reverse("accounts:password_reset"), {"email": person.email})
    assert first["Location"] == second["Location"]
    assert Notice.objects.filter(user=person, kind="password_reset").count() == 1


@pytest.mark.django_db
def test_email_change_link_is_mailed_to_the_new_address(person, recording_email):
    """R-NOT-1: the one notice service delivers the link to the address being verified."""
    from django.utils import timezone

    from notices.services import deliver_notice

    c = login(person.email, PASSWORD)
    c.post(reverse("accounts:profile"), {"action": "email", "email": "new@example.com"})
    notice = Notice.objects.get(user=person, kind="email_change")
    deliver_notice(notice, now=timezone.now())
    assert [m.to for m in recording_email.sent] == [["new@example.com"]]
