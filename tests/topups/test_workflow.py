"""Top-up workflow transitions and the user's pages (R-TOP-1)."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from core.models import AuditRecord
from tests.factories import UserFactory
from topups.models import TopUp
from topups.services.orders import cancel_topup, expire_unpaid_topups, start_topup
from topups.services.preconditions import TopUpRefused
from topups.services.remittances import confirm_remittance

from .conftest import verify


@pytest.mark.django_db
def test_user_cancels_own_order(client, ready_user):
    """R-TOP-1: created → cancelled by the user, audited."""
    topup = start_topup(ready_user, "10.00", channel="alipay")
    client.force_login(ready_user)
    response = client.post(f"/topups/{topup.pk}/cancel/")
    assert response.status_code == 302
    topup.refresh_from_db()
    assert topup.state == "cancelled"
    assert AuditRecord.objects.filter(object_id=str(topup.pk), action="cancel").exists()


@pytest.mark.django_db
def test_another_users_top_up_is_invisible(client, ready_user, agreement):
    """R-TOP-1: another user's top-up id gives 404 and cannot be cancelled."""
    topup = start_topup(ready_user, "10.00", channel="bank")
    intruder = UserFactory()
    client.force_login(intruder)
    assert client.get(f"/topups/{topup.pk}/").status_code == 404
    assert client.post(f"/topups/{topup.pk}/cancel/").status_code == 404
    with pytest.raises(PermissionDenied):
        cancel_topup(topup, actor=intruder)
    topup.refresh_from_db()
    assert topup.state == "created"
    assert topup.remittance_reference not in client.get("/topups/history/").content.decode()


@pytest.mark.django_db
def test_paid_order_cannot_be_cancelled(ready_user, finance):
    """R-TOP-1: only an order awaiting payment can be cancelled."""
    from django.core.exceptions import ValidationError

    topup = start_topup(ready_user, "10.00", channel="bank")
    confirm_remittance(
        topup,
        actor=finance,
        received_amount="10.00",
        payer_name="",
        payer_account="x",
        bank_reference="B1",
    )
    with pytest.raises(ValidationError):
        cancel_topup(topup, actor=ready_user)
    topup.refresh_from_db()
    assert topup.state == "paid"


@pytest.mark.django_db
def test_expire_unpaid_topups_expires_only_due_orders(ready_user):
    """R-TOP-1: unpaid orders past their window expire (set-based, audited, bounded)."""
    now = timezone.now()
    due = [start_topup(ready_user, "10.00", channel="alipay") for _ in range(3)]
    fresh = start_topup(ready_user, "10.00", channel="alipay")
    TopUp.objects.filter(pk__in=[t.pk for t in due]).update(expires_at=now - timedelta(minutes=1))
    assert expire_unpaid_topups(now, 2) == 2
    assert expire_unpaid_topups(now, 2) == 1
    assert expire_unpaid_topups(now, 2) == 0
    assert set(TopUp.objects.filter(state="expired").values_list("pk", flat=True)) == {
        t.pk for t in due
    }
    fresh.refresh_from_db()
    assert fresh.state == "created"
    assert AuditRecord.objects.filter(action="expire").count() == 3


@pytest.mark.django_db
def test_history_lists_own_top_ups_with_bounded_queries(
    client, ready_user, django_assert_max_num_queries
):
    """R-TOP-1: the user's top-up history, no N+1."""
    for _ in range(5):
        start_topup(ready_user, "10.00", channel="bank")
    client.force_login(ready_user)
    with django_assert_max_num_queries(6):
        response = client.get("/topups/history/")
    assert response.content.decode().count("Awaiting payment") == 5


@pytest.mark.django_db
def test_page_flow_bank_transfer(client, agreement, user):
    """R-TOP-1, R-ACC-7: the page accepts the agreement with the order and shows the reference."""
    verify(user)
    client.force_login(user)
    page = client.get("/topups/").content.decode()
    assert agreement.body in page
    response = client.post(
        "/topups/",
        {
            "amount": "66.00",
            "channel": "bank",
            "accept_agreement": "on",
            "agreement_version": agreement.pk,
        },
    )
    topup = TopUp.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/topups/{topup.pk}/"
    assert topup.acceptance.version == agreement
    assert topup.remittance_reference in client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_page_flow_alipay_redirects_to_signed_gateway(client, ready_user):
    """R-TOP-1: an Alipay order redirects to the configured gateway with a signed request."""
    client.force_login(ready_user)
    response = client.post("/topups/", {"amount": "20.00", "channel": "alipay"})
    assert response.status_code == 302
    assert response["Location"].startswith("/topups/sandbox/gateway/?")
    cashier = client.get(response["Location"])
    assert cashier.status_code == 200
    assert "¥20.00" in cashier.content.decode()


@pytest.mark.django_db
def test_sandbox_refuses_unsigned_requests_and_is_off_when_disabled(client, settings):
    """The sandbox cashier only serves signed requests and only when ALIPAY_SANDBOX is on."""
    assert client.get("/topups/sandbox/gateway/?app_id=1&sign=AAAA").status_code == 400
    settings.ALIPAY_SANDBOX = False
    assert client.get("/topups/sandbox/gateway/").status_code == 404


@pytest.mark.django_db
def test_accept_uses_accepted_version(ready_user):
    """R-ACC-7: an old acceptance does not satisfy a new version in force."""
    from .conftest import make_agreement

    user = ready_user
    newer = make_agreement("2026.2")
    type(newer).objects.filter(pk=newer.pk).update(effective_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(TopUpRefused):
        start_topup(user, "10.00", channel="alipay")
    topup = start_topup(user, "10.00", channel="alipay", accept_version=newer.pk)
    assert topup.acceptance.version_id == newer.pk


@pytest.mark.django_db
def test_expiry_job_is_registered_and_runs(ready_user):
    """R-TOP-1: the ops job `expire_unpaid_topups` expires due orders when run."""
    from ops.framework import REGISTRY
    from ops.services import run_job

    assert "expire_unpaid_topups" in REGISTRY
    topup = start_topup(ready_user, "10.00", channel="alipay")
    TopUp.objects.filter(pk=topup.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    run_job("expire_unpaid_topups")
    topup.refresh_from_db()
    assert topup.state == "expired"
