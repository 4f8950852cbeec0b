"""The staff workbench on the admin home (issue 15): each queue's size and age, linked to
the filtered queue; only the queues a staff member may open; bounded queries."""

import pytest
from django.urls import reverse

from billing.services.settlement import charge_usage
from tests.accounts.conftest import submit_individual
from tests.factories import StaffFactory, UserFactory, cny, grant
from tests.refunds.conftest import alipay_topup
from tests.refunds.conftest import ready_user as ready_user  # the fixture

pytestmark = pytest.mark.django_db


def _admin_home(client, staff):
    client.force_login(staff)
    response = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response.content.decode()


def test_a_pending_verification_shows_with_a_link_to_its_queue(client):
    """R-ACC-2: CS see how many verifications wait, and open the filtered queue."""
    submit_individual(UserFactory(phone=""))
    cs = grant(StaffFactory(), "accounts.view_verification")
    page = _admin_home(client, cs)
    queue = reverse("admin:accounts_verification_changelist") + "?state__exact=submitted"
    assert f'<a href="{queue}" class="count">1</a>' in page
    assert client.get(queue).status_code == 200  # the link is a filter the admin accepts


def test_staff_see_only_the_queues_they_may_open(client):
    """A CS agent without refund or invoice permissions sees neither queue."""
    cs = grant(StaffFactory(), "accounts.view_verification")
    page = _admin_home(client, cs)
    assert "Refunds" not in page.split('id="workbench"')[1].split("</div>")[0]
    finance = grant(StaffFactory(), "refunds.view_refundrequest", "invoices.view_invoicerequest")
    page = _admin_home(client, finance)
    assert reverse("admin:refunds_refundrequest_changelist") in page
    assert reverse("admin:invoices_invoicerequest_changelist") in page


def test_today_shows_paid_top_ups_and_consumption(client, ready_user):
    """Finance see today's paid top-ups and consumption."""
    alipay_topup(ready_user, cny("40"))
    charge_usage(ready_user.balance_account, cny("1.5"), request_id="wb-1", model="m")
    boss = StaffFactory(is_superuser=True)
    page = _admin_home(client, boss)
    assert "Top-ups paid today: <strong>1 · ¥40.00</strong>" in page
    assert "Consumption today: <strong>1 · ¥1.50</strong>" in page


def test_every_queue_link_is_accepted_by_its_admin(client):
    """Each tile links to a changelist filter the admin accepts (no 400 or redirect)."""
    boss = StaffFactory(is_superuser=True)
    page = _admin_home(client, boss)
    links = {
        part.split('"')[0].replace("&amp;", "&")
        for part in page.split('id="workbench"')[1].split("</div>")[0].split('href="')[1:]
    }
    assert len(links) >= 10
    for link in links:
        assert client.get(link).status_code == 200, link


def test_the_workbench_costs_a_bounded_number_of_queries(client, django_assert_max_num_queries):
    """One aggregate per tile, whatever the number of cases."""
    boss = StaffFactory(is_superuser=True)
    client.force_login(boss)
    for _ in range(3):
        submit_individual(UserFactory(phone=""))
    with django_assert_max_num_queries(25):
        assert client.get(reverse("admin:index")).status_code == 200
