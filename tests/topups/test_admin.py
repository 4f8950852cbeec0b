"""Admin flows through the transition buttons (R-TOP-1, R-TOP-4, R-TOP-5)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditRecord
from tests.factories import StaffFactory, cny, grant
from topups.models import Promotion, TrialSettings
from topups.services.orders import start_topup
from topups.services.remittances import confirm_remittance

from .conftest import balance


@pytest.mark.django_db
def test_finance_resolves_review_through_the_admin_button(client, ready_user, finance):
    """R-TOP-1, R-ADM-4: finance's admin button proposes crediting a top-up in review, with
    a reason; a second finance approver's button credits it."""
    topup = start_topup(ready_user, "100.00", channel="bank")
    confirm_remittance(
        topup,
        actor=finance,
        received_amount="90.00",
        payer_name="",
        payer_account="x",
        bank_reference="B-REV",
    )
    client.force_login(finance)
    url = f"/admin/topups/topup/{topup.pk}/"
    assert "Propose crediting the received amount" in client.get(f"{url}change/").content.decode()
    response = client.post(
        f"{url}transition/credit_received/", {"reason": "customer agreed to 90.00"}
    )
    assert response.status_code == 302
    topup.refresh_from_db()
    assert topup.state == "approval"
    assert balance(ready_user)["cash"] == cny("0")
    assert AuditRecord.objects.filter(action="credit_received", actor=finance).exists()
    second = grant(StaffFactory(), "topups.view_topup", "topups.resolve_review")
    client.force_login(second)
    response = client.post(f"{url}transition/approve_credit/", {"reason": "statement checked"})
    assert response.status_code == 302
    topup.refresh_from_db()
    assert topup.state == "paid"
    assert balance(ready_user)["cash"] == cny("90.00")
    assert AuditRecord.objects.filter(action="approve_credit", actor=second).exists()


@pytest.mark.django_db
def test_confirm_button_refuses_staff_without_finance(client, ready_user):
    """R-TOP-1: the confirmation form is refused to staff without the permission."""
    topup = start_topup(ready_user, "100.00", channel="bank")
    cs = grant(StaffFactory(), "topups.view_topup", "topups.change_topup")
    client.force_login(cs)
    client.post(
        f"/admin/topups/topup/{topup.pk}/transition/confirm_remittance/",
        {
            "received_amount": "100.00",
            "payer_name": "Zhang San",
            "payer_account": "x",
            "bank_reference": "B-1",
            "reason": "x",
        },
    )
    topup.refresh_from_db()
    assert topup.state == "created"


@pytest.mark.django_db
def test_end_promotion_button_voids_benefits(client, ready_user, finance):
    """R-TOP-4: staff end a promotion from admin and void its unused benefits."""
    promo = Promotion.objects.create(
        name="Autumn",
        kind="topup_discount",
        benefit_type="fixed",
        benefit_amount=cny("7.00"),
        starts_at=timezone.now() - timedelta(days=1),
    )
    topup = start_topup(ready_user, "100.00", channel="bank")
    confirm_remittance(
        topup,
        actor=finance,
        received_amount="100.00",
        payer_name="",
        payer_account="x",
        bank_reference="B-P",
    )
    assert balance(ready_user)["discount"] == cny("7.00")
    staff = grant(
        StaffFactory(), "topups.view_promotion", "topups.change_promotion", "topups.end_promotion"
    )
    client.force_login(staff)
    response = client.post(
        f"/admin/topups/promotion/{promo.pk}/transition/end/",
        {"reason": "budget spent", "void_unused": "on"},
    )
    assert response.status_code == 302
    promo.refresh_from_db()
    assert promo.state == "ended"
    assert balance(ready_user)["discount"] == cny(0)


@pytest.mark.django_db
def test_trial_settings_singleton_in_admin(admin_client):
    """R-TOP-5, R-ADM-5: staff edit the one trial-settings row, with a reason."""
    response = admin_client.get("/admin/topups/trialsettings/")
    assert response.status_code == 302
    row = TrialSettings.load()
    response = admin_client.post(
        f"/admin/topups/trialsettings/{row.pk}/change/",
        {
            "enabled": "on",
            "amount_0": "35.00",
            "amount_1": "CNY",
            "validity_days": "14",
            "reason": "winter campaign",  # R-ADM-5: every change says why
            "core-auditrecord-content_type-object_id-TOTAL_FORMS": "0",
            "core-auditrecord-content_type-object_id-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.amount == cny("35.00") and row.validity_days == 14
    assert TrialSettings.objects.count() == 1
