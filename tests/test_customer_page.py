"""The 360° customer page CS open for one user (issue 15): everything linked, personal
data masked, staff-only, a bounded number of queries."""

import pytest
from django.urls import reverse

from billing.services.settlement import charge_usage
from tests.factories import StaffFactory, UserFactory, cny, grant
from tests.refunds.conftest import alipay_topup
from tests.refunds.conftest import ready_user as ready_user  # the fixture
from topups.services.orders import start_topup

pytestmark = pytest.mark.django_db

CS = ("accounts.view_balanceaccount", "accounts.view_user")


def test_cs_see_a_customer_whole_with_links(client, ready_user):
    """Identity (masked), standing, balance, top-ups, lots, charges, each linked."""
    topup = alipay_topup(ready_user, cny("30"))
    charge_usage(ready_user.balance_account, cny("2"), request_id="c360", model="qwen")
    client.force_login(grant(StaffFactory(), *CS))
    page = client.get(reverse("admin:customer", args=[ready_user.pk])).content.decode()
    assert ready_user.email in page
    assert reverse("admin:topups_topup_change", args=[topup.pk]) in page
    assert reverse("admin:billing_lot_change", args=[topup.lot_id]) in page
    assert "c360" in page and "¥28.00" in page
    assert '<td class="event-state">Settled' in page


def test_recent_events_show_pending_settled_and_credited_back(client, ready_user):
    """R-USE-5 / issue 14: the customer page shows each recent event's state: pending
    until settled, then settled, and whether staff credited it back."""
    from accounts.services import create_api_key
    from billing.models import UsageEvent
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage
    from billing.services.usage_credits import credit_back_usage

    alipay_topup(ready_user, cny("30"))
    _key, raw = create_api_key(ready_user, name="k")
    charge_usage(ready_user.balance_account, cny("1"), request_id="c360-s0", model="m")
    settled = charge_usage(ready_user.balance_account, cny("1"), request_id="c360-s", model="m")
    staff = grant(StaffFactory(), *CS, "billing.credit_back_usage")
    credit_back_usage(UsageEvent.objects.get(pk=settled.pk), actor=staff, reason="outage")
    record_usage([ReportedUsage("c360-pending", resolve_api_keys([raw])[raw], "m", 10_000)])
    client.force_login(staff)
    page = client.get(reverse("admin:customer", args=[ready_user.pk])).content.decode()
    states = page.split('class="event-state">')[1:]
    cells = [state.split("</td>")[0] for state in states]
    assert len(cells) == 3  # newest first
    assert cells[0] == "Pending"
    assert cells[1].startswith("Settled") and "credited back" in cells[1]
    assert cells[2].startswith("Settled") and "credited back" not in cells[2]
    verification = ready_user.verifications.first()
    assert verification.id_number not in page  # masked, never in full
    assert verification.masked_number in page


def test_only_staff_with_the_permission_open_it(client, user):
    """A user, or staff without the account permission, are refused."""
    url = reverse("admin:customer", args=[user.pk])
    client.force_login(UserFactory())
    assert client.get(url).status_code == 302  # not staff: the admin login
    client.force_login(StaffFactory())
    assert client.get(url).status_code == 403
    client.force_login(grant(StaffFactory(), *CS))
    assert client.get(reverse("admin:customer", args=[999999])).status_code == 404


def test_the_page_costs_the_same_queries_for_a_busy_customer(
    client, ready_user, django_assert_max_num_queries
):
    """One query per section, whatever the customer has."""
    client.force_login(grant(StaffFactory(), *CS))
    url = reverse("admin:customer", args=[ready_user.pk])
    charge_usage(ready_user.balance_account, cny("1"), request_id="first", model="m")
    with django_assert_max_num_queries(40) as before:
        client.get(url)
    for n in range(5):
        alipay_topup(ready_user, cny("10"))
        start_topup(ready_user, cny("10"), channel="bank")
        charge_usage(ready_user.balance_account, cny("1"), request_id=f"busy-{n}", model="m")
    with django_assert_max_num_queries(len(before.captured_queries)):
        client.get(url)
