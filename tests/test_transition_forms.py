"""Transition forms show the case they act on (issue 15)."""

import pytest
from django.urls import reverse

from accounts.identity import make_resident_id
from tests.accounts.conftest import submit_individual
from tests.factories import StaffFactory, UserFactory, grant
from tests.topups.conftest import agreement as agreement  # noqa: F401
from tests.topups.conftest import ready_user as ready_user  # noqa: F401 (fixtures)
from topups.services.orders import start_topup

pytestmark = pytest.mark.django_db


def test_a_verification_decision_shows_age_warnings_and_other_accounts(client):
    """R-ACC-2, R-ACC-4: approving shows how long it waited, the check-digit warning and
    the other accounts pending on the same identity."""
    from datetime import date

    number = make_resident_id(date(1990, 5, 17), sequence=555)
    first = submit_individual(UserFactory(phone=""), id_number=number)
    second = submit_individual(UserFactory(phone=""), id_number=number)
    cs = grant(StaffFactory(), "accounts.view_verification", "accounts.review_verification")
    client.force_login(cs)
    url = reverse("admin:accounts_verification_transition", args=[first.pk, "approve"])
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="workflow-case"' in page
    assert "Other accounts on this identity" in page and second.user.email in page
    assert first.masked_number in page and number not in page


def test_a_remittance_confirmation_shows_the_order_user_and_expected_amount(client, ready_user):
    """R-TOP-1: the confirmation form shows what is being confirmed."""
    order = start_topup(ready_user, "321.00", channel="bank")
    finance = grant(StaffFactory(), "topups.view_topup", "topups.confirm_remittance")
    client.force_login(finance)
    url = reverse("admin:topups_topup_transition", args=[order.pk, "confirm_remittance"])
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    case = page.split('id="workflow-case"')[1].split("</table>")[0]
    assert order.out_trade_no in case and ready_user.email in case and "321" in case
