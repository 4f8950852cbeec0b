"""R-ADM-4 in the browser: one finance user records a counter payment in the admin, a
second one approves it from the top-up's page; the money is credited only then."""

import pytest

from tests.factories import PASSWORD, StaffFactory, cny, grant
from tests.topups.conftest import balance
from topups.models import TopUp

FINANCE = ("topups.view_topup", "topups.confirm_remittance", "topups.resolve_review")


def _login(page, user):
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("#id_username", user.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_manual_payment_needs_a_second_finance_approver_in_admin(page, ready_user):
    """R-ADM-4: recorded by one, refused to the same person, credited by the second."""
    first, second = (grant(StaffFactory(), *FINANCE) for _ in range(2))
    _login(page, first)
    page.goto("/admin/topups/topup/record-manual/")
    page.fill("#id_email", ready_user.email)
    page.fill("#id_amount", "66.00")
    page.fill("#id_payer_name", "Zhang San")
    page.fill("#id_payer_account", "counter 7")
    page.fill("#id_reference", "COUNTER-7")
    page.fill("#id_reason", "paid at the counter")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "second finance approver" in page.inner_text(".messagelist")
    topup = TopUp.objects.get()
    assert topup.state == "approval"
    assert balance(ready_user)["cash"] == cny("0")

    # the proposer is not offered the button: it is shown disabled, with the reason
    page.goto(f"/admin/topups/topup/{topup.pk}/change/")
    assert page.locator("a[data-transition=approve_credit]").count() == 0
    assert "Four eyes" in page.inner_text(".workflow-refused")
    # and the server refuses the step to them even by its address
    page.goto(f"/admin/topups/topup/{topup.pk}/transition/approve_credit/")
    page.fill("#id_reason", "my own proposal")
    page.click("input[type=submit][value=Apply]")
    page.wait_for_selector(".messagelist")
    assert "Four eyes" in page.inner_text(".messagelist")
    topup.refresh_from_db()
    assert topup.state == "approval"

    _login(page, second)
    page.goto(f"/admin/topups/topup/{topup.pk}/change/")
    page.click("a[data-transition=approve_credit]")
    page.fill("#id_reason", "counter receipt checked")
    page.click("input[type=submit][value=Apply]")
    page.wait_for_selector(".messagelist")
    topup.refresh_from_db()
    assert topup.state == "paid" and topup.approved_by == second
    assert balance(ready_user)["cash"] == cny("66.00")
