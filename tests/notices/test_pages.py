import pytest
from django.urls import reverse

from notices.models import EmailOptOut, Notice
from tests.factories import PASSWORD, UserFactory, agreement_notice

pytestmark = pytest.mark.django_db


def notices_for(user, n, prefix="x"):
    return [agreement_notice(user, f"{prefix}{i}") for i in range(n)]


def test_pages_need_login(client):
    for name in ("notices:list", "notices:preferences"):
        assert client.get(reverse(name)).status_code == 302


def test_list_shows_own_notices_and_unread_count_in_header(client, user):
    """R-NOT-1: users see their notices in their pages, with the unread count in the header."""
    notices_for(user, 3)
    notices_for(UserFactory(), 2, prefix="other")
    client.force_login(user)
    resp = client.get(reverse("notices:list"))
    assert resp.status_code == 200
    assert resp.context["unread_notice_count"] == 3
    assert b'id="unread-count">3<' in resp.content
    assert b"Service agreement x0" in resp.content and b"other" not in resp.content
    # The header count shows on every page, e.g. the dashboard.
    assert b'id="unread-count">3<' in client.get("/").content


def test_list_query_count_is_fixed(client, user, django_assert_max_num_queries):
    notices_for(user, 25)
    client.force_login(user)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("notices:list")).status_code == 200


def test_mark_read_and_open(client, user):
    a, b, c = notices_for(user, 3)
    client.force_login(user)
    assert client.post(reverse("notices:mark_read", args=[a.pk])).status_code == 302
    resp = client.get(reverse("notices:detail", args=[b.pk]))
    assert resp.status_code == 200 and b"Terms x1" in resp.content
    assert Notice.objects.filter(read_at__isnull=True).count() == 1
    assert client.get(reverse("notices:list")).context["unread_notice_count"] == 1
    client.post(reverse("notices:mark_all_read"))
    assert not Notice.objects.filter(read_at__isnull=True).exists()


def test_another_users_notice_is_not_found_and_unchanged(client, user):
    """Bad input: another user's notice id is a 404 and changes nothing."""
    (theirs,) = notices_for(UserFactory(), 1)
    client.force_login(user)
    assert client.post(reverse("notices:mark_read", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("notices:detail", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mark_read_is_post_only(client, user):
    (notice,) = notices_for(user, 1)
    client.force_login(user)
    assert client.get(reverse("notices:mark_read", args=[notice.pk])).status_code == 405
    notice.refresh_from_db()
    assert notice.read_at is None


def test_preferences_page_turns_optional_kinds_off_but_not_required(client, user):
    """R-NOT-1: users choose optional kinds by email; a forged field for a required kind
    changes nothing."""
    client.force_login(user)
    page = client.get(reverse("notices:preferences"))
    assert page.status_code == 200
    assert b'name="topup_credited"' in page.content
    assert b'name="service_stopped"' not in page.content  # required: shown disabled only
    resp = client.post(
        reverse("notices:preferences"),
        {"low_balance": "on", "service_stopped": ""},
    )
    assert resp.status_code == 302
    assert set(EmailOptOut.objects.filter(user=user).values_list("kind", flat=True)) == {
        "topup_credited",
        "trial_granted",
        "spend_limit_reached",  # issue 23: an optional alert, off when not ticked
    }
    page = client.get(reverse("notices:preferences"))
    assert page.context["form"].initial["low_balance"] is True
    assert page.context["form"].initial["topup_credited"] is False


def test_login_then_see_notices(client, user):
    notices_for(user, 1)
    assert client.login(email=user.email, password=PASSWORD)
    assert client.get(reverse("notices:list")).status_code == 200
