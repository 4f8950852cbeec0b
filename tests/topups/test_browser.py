"""Full paths over real HTTP: the sandbox cashier and finance's admin (R-TOP-1, R-TOP-2)."""

import urllib.parse
import urllib.request

import pytest

from tests.factories import PASSWORD, StaffFactory, cny, grant
from topups.models import TopUp
from topups.services.orders import start_topup

from .conftest import balance, signed_notification, verify


def _login(page, email):
    page.goto("/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


@pytest.mark.django_db(transaction=True)
def test_notification_over_real_http(live_server, ready_user):
    """R-TOP-1: a signed notification POSTed over HTTP answers `success` and credits once."""
    order = start_topup(ready_user, "30.00", channel="alipay")
    data = urllib.parse.urlencode(signed_notification(order)).encode()
    url = f"{live_server.url}/topups/alipay/notify/"
    for _ in range(2):
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as resp:
            assert resp.read() == b"success"
    assert balance(ready_user)["cash"] == cny("30.00")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_user_tops_up_through_the_sandbox_cashier_and_sees_the_balance(page, agreement, user):
    """R-TOP-1, R-TOP-2, R-ACC-7: agreement accepted on the page → signed page-pay → sandbox
    cashier → signed notification over HTTP → paid; the balance shows it at once."""
    verify(user)
    _login(page, user.email)
    page.goto("/topups/")
    assert agreement.body in page.inner_text("#agreement")
    page.fill("#id_amount", "88.80")
    page.check("input[name=channel][value=alipay]")
    page.check("#id_accept_agreement")
    page.click("#topup-form button[type=submit]")
    page.wait_for_selector("#cashier-pay")
    assert "¥88.80" in page.inner_text("#cashier-amount")
    page.click("#cashier-pay")
    page.wait_for_selector("#topup-state")
    assert page.inner_text("#topup-state") == "Paid"
    assert page.inner_text("#balance-available") == "¥88.80"
    topup = TopUp.objects.get()
    assert topup.state == "paid" and not topup.third_party
    assert topup.acceptance.version == agreement
    assert balance(user)["cash"] == cny("88.80")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_sandbox_third_party_payer(page, ready_user):
    """R-TOP-3: a payer name entered in the cashier that is not the holder marks the lot."""
    _login(page, ready_user.email)
    page.goto("/topups/")
    page.fill("#id_amount", "10.00")
    page.click("#topup-form button[type=submit]")
    page.fill("#payer_name", "Li Si")
    page.click("#cashier-pay")
    page.wait_for_selector("#topup-state")
    topup = TopUp.objects.get()
    assert topup.state == "paid" and topup.lot.third_party


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_finance_confirms_a_bank_transfer_in_admin(page, ready_user):
    """R-TOP-1: finance opens the top-up in admin, confirms the remittance; the lot is credited."""
    topup = start_topup(ready_user, "250.00", channel="bank")
    finance = grant(StaffFactory(), "topups.view_topup", "topups.confirm_remittance")
    page.goto("/admin/login/")
    page.fill("#id_username", finance.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"/admin/topups/topup/?q={topup.remittance_reference}")
    page.click(f"text={topup.out_trade_no}")
    page.click("a[data-transition=confirm_remittance]")
    page.fill("#id_received_amount", "250.00")
    page.fill("#id_payer_name", "Zhang San")
    page.fill("#id_payer_account", "6222 0202 0000 1234")
    page.fill("#id_bank_reference", "CMB20261128-77")
    page.click("input[type=submit][value=Apply]")
    page.wait_for_selector(".messagelist")
    topup.refresh_from_db()
    assert topup.state == "paid"
    assert topup.trade_no == "CMB20261128-77"
    assert balance(ready_user)["cash"] == cny("250.00")
