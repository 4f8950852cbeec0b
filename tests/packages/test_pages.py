"""The user's packages and spend-limit pages, the gateway API, and the catalogue admin
(R-USE-7, R-PKG-1, R-PKG-2)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import PackageHolding, ResourcePackage, SpendLimit
from billing.services.ledger import credit_lot
from billing.services.settlement import charge_usage
from billing.services.spend_limits import set_spend_limit
from core.models import AuditRecord
from tests.factories import StaffFactory, cny, grant
from tests.ledger.http import TOKEN, post

from .helpers import make_package


@pytest.fixture(autouse=True)
def _gateway_token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def test_limits_page_sets_shows_and_removes_a_limit(logged_in, account, api_key):
    """R-USE-7: the user sets a key's monthly limit and sees spend against it."""
    url = reverse("billing:limits")
    resp = logged_in.post(
        url, {"scope": str(api_key.pk), "period": "month", "amount": "20.00", "hard": "on"}
    )
    assert resp.status_code == 302
    lim = SpendLimit.objects.get()
    assert (lim.api_key_id, lim.limit_micro, lim.hard) == (api_key.pk, 20_000_000, True)
    page = logged_in.get(url).content.decode()
    assert "limit-row" in page and "20.00" in page
    logged_in.post(url, {"remove": str(lim.pk)})
    assert not SpendLimit.objects.exists()


@pytest.mark.parametrize("amount", ["0", "1.001", "x", "", "100000000"])
def test_limits_page_bad_input_is_a_form_error(logged_in, account, amount):
    """R-USE-7: bad input gets a form error (400), never a 500, and saves nothing."""
    resp = logged_in.post(
        reverse("billing:limits"), {"scope": "account", "period": "day", "amount": amount}
    )
    assert resp.status_code == 400
    assert not SpendLimit.objects.exists()


def test_a_foreign_key_cannot_be_limited(logged_in, account):
    """R-USE-7: the scope list holds only the user's own keys."""
    from accounts.services import create_api_key
    from tests.factories import UserFactory

    other_key, _ = create_api_key(UserFactory(phone=""), name="theirs")
    resp = logged_in.post(
        reverse("billing:limits"),
        {"scope": str(other_key.pk), "period": "day", "amount": "5.00"},
    )
    assert resp.status_code == 400
    assert not SpendLimit.objects.exists()


def test_packages_page_buys_once_per_form(logged_in, account):
    """R-PKG-2: buying from the page; a double click (same form token) buys once."""
    credit_lot(account, cny("20"), channel="alipay", idempotency_key="L")
    pkg = make_package()
    page = logged_in.get(reverse("billing:packages")).content.decode()
    assert "GLM" in page
    data = {"package": str(pkg.pk), "token": "tok-1"}
    assert logged_in.post(reverse("billing:packages"), data).status_code == 302
    assert logged_in.post(reverse("billing:packages"), data).status_code == 302
    assert PackageHolding.objects.filter(account=account).count() == 1


def test_packages_page_refusal_is_a_message_not_a_500(logged_in, account):
    """R-PKG-2: insufficient balance is refused with a clear reason."""
    pkg = make_package()
    resp = logged_in.post(reverse("billing:packages"), {"package": str(pkg.pk), "token": "t"})
    assert resp.status_code == 400
    assert not PackageHolding.objects.exists()
    resp = logged_in.post(reverse("billing:packages"), {"package": "nope", "token": "t2"})
    assert resp.status_code == 400


def test_gateway_answers_429_with_the_limit(client, account, api_key):
    """R-USE-7: authorize over HTTP: 429, stable code, which limit, when it resets."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    set_spend_limit(account=account, period="day", amount="1.00", hard=True)
    charge_usage(api_key, cny("1"), request_id="r1", model="m")
    status, body = post(client, "authorize", {"api_key": api_key.raw})
    assert status == 429, body
    assert body["code"] == "spend_limit_exceeded" and body["limit"]["period"] == "day"
    assert body["limit"]["resets_at"]


def test_usage_state_names_the_package(client, account, api_key):
    """R-PKG-3: GET usage/{id}: the split names the package."""
    from billing.services.packages import buy_package

    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    charge_usage(api_key, cny("1"), request_id="r1", model="glm-4")
    resp = client.get("/api/v1/gateway/usage/r1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    body = resp.json()
    assert body["split"]["package"] == "1.000000"
    assert body["sources"][0]["package_name"]


def test_catalogue_admin_needs_its_permission_and_a_reason(client, db):
    """R-PKG-1, R-ADM-5: its own permission; a change needs a reason and is audited
    with old and new values; a package on sale keeps its price and face value."""
    staff = StaffFactory(phone="")
    client.force_login(staff)
    add = reverse("admin:billing_resourcepackage_add")
    assert client.get(add).status_code == 403
    grant(staff, "billing.manage_resource_packages")
    now = timezone.now()
    data = {
        "name_zh": "包",
        "name_en": "Pack",
        "price_0": "9.00",
        "price_1": "CNY",
        "face_value": "10",
        "models_text": "glm-4\nglm-4v",
        "validity_days": "30",
        "sale_starts_at_0": (now - timedelta(days=1)).strftime("%Y-%m-%d"),
        "sale_starts_at_1": "00:00:00",
        "active": "on",
        "reason": "",
    }
    prefix = "core-auditrecord-content_type-object_id-"
    mgmt = {f"{prefix}TOTAL_FORMS": "0", f"{prefix}INITIAL_FORMS": "0"}
    resp = client.post(add, {**data, **mgmt})
    assert resp.status_code == 200 and not ResourcePackage.objects.exists()  # no reason
    resp = client.post(add, {**data, **mgmt, "reason": "launch"})
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    pkg = ResourcePackage.objects.get()
    assert pkg.models_covered == ["glm-4", "glm-4v"] and pkg.face_micro == 10_000_000
    change = reverse("admin:billing_resourcepackage_change", args=[pkg.pk])
    resp = client.post(change, {**data, **mgmt, "price_0": "5.00", "reason": "cheaper"})
    assert resp.status_code == 200  # refused: on sale
    pkg.refresh_from_db()
    assert pkg.price == cny("9.00")
    resp = client.post(change, {**data, **mgmt, "validity_days": "60", "reason": "longer"})
    assert resp.status_code == 302
    audits = AuditRecord.objects.filter(object_id=str(pkg.pk)).order_by("id")
    assert [a.action for a in audits] == ["create_package", "change_package"]
    assert audits[1].details["changes"]["validity_days"] == {"old": 30, "new": 60}


def test_home_key_page_and_customer_page_show_spend_against_limits(logged_in, account, api_key):
    """R-USE-7: the user sees spend against each limit on the home and key pages; staff
    see the limits and packages on the customer page."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    set_spend_limit(account=account, api_key=api_key, period="month", amount="4.00", hard=True)
    charge_usage(api_key, cny("1"), request_id="r1", model="m")
    home = logged_in.get(reverse("home")).content.decode()
    assert 'id="home-limits"' in home and "25 %" in home
    keys = logged_in.get(reverse("accounts:api_keys")).content.decode()
    assert "key-limits" in keys and "25 %" in keys
    staff = grant(StaffFactory(phone=""), "accounts.view_user")
    logged_in.force_login(staff)
    from console.customer import customer_context

    ctx = customer_context(account.user)
    assert ctx["spend_limits"][0]["pct"] == 25


def test_statement_and_usage_pages_show_package_use(logged_in, account, api_key):
    """R-PKG-3: the statement and the usage pages show the purchase and the calls a
    package paid (no error on the package bucket)."""
    from billing.services.packages import buy_package

    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    buy_package(account=account, package_id=make_package().pk, idempotency_key="k")
    charge_usage(api_key, cny("1"), request_id="r1", model="glm-4")
    page = logged_in.get(reverse("billing:balance"))
    assert page.status_code == 200
    assert "Prepaid purchase" in page.content.decode()
    assert logged_in.get(reverse("billing:usage")).status_code == 200
    from billing.models import UsageEvent

    txn_id = UsageEvent.objects.get(request_id="r1").transaction_id
    events = logged_in.get(reverse("billing:usage_events", args=[txn_id])).content.decode()
    assert "r1" in events and "Resource package #" in events
