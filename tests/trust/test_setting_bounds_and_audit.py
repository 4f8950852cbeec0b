"""R-ADM-5: promotions, trial settings and grant validity are bounded by configurable
limits, and every change is audited with old value, new value and reason."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.models import AuditRecord
from tests.factories import StaffFactory, cny, grant
from topups.models import Promotion, TrialSettings
from topups.services.promotions import save_promotion
from topups.services.trials import change_grant_validity, save_trial_settings

pytestmark = pytest.mark.django_db

PROMO_ADMIN = (
    "topups.view_promotion",
    "topups.add_promotion",
    "topups.change_promotion",
    "core.view_auditrecord",
)


def _promotion(**overrides):
    fields = {
        "name": "Spring bonus",
        "kind": "topup_discount",
        "starts_at": timezone.now(),
        "benefit_type": "fixed",
        "benefit_amount": cny("10.00"),
    }
    fields.update(overrides)
    return Promotion(**fields)


@pytest.mark.parametrize(
    "field, value",
    [
        ("benefit_amount", cny("1000.01")),
        ("total_quantity", 100001),
        ("per_user_limit", 100001),
        ("bonus_validity_days", 366),
    ],
)
def test_promotion_values_above_the_bounds_are_refused(field, value):
    """R-ADM-5: a promotion beyond a configured bound is refused and nothing is saved."""
    staff = grant(StaffFactory(), *PROMO_ADMIN)
    with pytest.raises(ValidationError) as err:
        save_promotion(_promotion(**{field: value}), actor=staff, reason="launch")
    assert field in err.value.message_dict
    assert not Promotion.objects.exists()


def test_percent_and_cap_bounds_follow_the_settings(settings):
    """R-ADM-5: the bounds are configurable: a 60% benefit is refused under the default
    50% limit and accepted when PROMOTION_MAX_PERCENT allows it."""
    staff = grant(StaffFactory(), *PROMO_ADMIN)
    percent = {"benefit_type": "percent", "benefit_amount": None, "benefit_percent": 60}
    with pytest.raises(ValidationError):
        save_promotion(_promotion(**percent, benefit_cap=cny("50.00")), actor=staff, reason="x")
    with pytest.raises(ValidationError):
        save_promotion(_promotion(**percent, benefit_cap=cny("5000.00")), actor=staff, reason="x")
    settings.PROMOTION_MAX_PERCENT = 80
    save_promotion(_promotion(**percent, benefit_cap=cny("50.00")), actor=staff, reason="x")
    assert Promotion.objects.count() == 1


def test_every_promotion_change_is_audited_with_old_new_and_reason():
    """R-ADM-5: creating and changing a promotion writes audit rows naming the fields,
    their old and new values and the reason; a change without a reason is refused."""
    staff = grant(StaffFactory(), *PROMO_ADMIN)
    promotion = save_promotion(_promotion(), actor=staff, reason="spring campaign")
    created = AuditRecord.objects.get(action="create_promotion")
    assert created.details["changes"]["benefit_amount"]["new"].endswith("10.00")
    promotion.benefit_amount = cny("20.00")
    with pytest.raises(ValidationError):
        save_promotion(promotion, actor=staff, reason="  ")
    save_promotion(promotion, actor=staff, reason="competitor matched")
    changed = AuditRecord.objects.get(action="change_promotion")
    assert changed.actor == staff and changed.reason == "competitor matched"
    assert list(changed.details["changes"]) == ["benefit_amount"]
    old, new = (changed.details["changes"]["benefit_amount"][k] for k in ("old", "new"))
    assert "10.00" in old and "20.00" in new


def test_promotion_admin_needs_a_reason_and_refuses_oversized_values(client):
    """R-ADM-5: the admin form asks for a reason; an oversized benefit is a form error."""
    staff = grant(StaffFactory(), *PROMO_ADMIN)
    client.force_login(staff)
    data = {
        "name": "Admin promo",
        "kind": "topup_discount",
        "priority": 0,
        "starts_at_0": "2026-12-01",
        "starts_at_1": "00:00:00",
        "account_kind": "any",
        "min_topup_0": "0",
        "min_topup_1": "CNY",
        "benefit_type": "fixed",
        "benefit_amount_0": "999999.00",
        "benefit_amount_1": "CNY",
        "benefit_cap_1": "CNY",
        "core-auditrecord-content_type-object_id-TOTAL_FORMS": "0",
        "core-auditrecord-content_type-object_id-INITIAL_FORMS": "0",
    }
    response = client.post("/admin/topups/promotion/add/", {**data, "reason": "launch"})
    assert response.status_code == 200
    assert "PROMOTION_MAX_BENEFIT" in response.content.decode()
    data["benefit_amount_0"] = "30.00"
    response = client.post("/admin/topups/promotion/add/", data)
    assert response.status_code == 200 and not Promotion.objects.exists()
    response = client.post("/admin/topups/promotion/add/", {**data, "reason": "launch"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AuditRecord.objects.get(action="create_promotion").reason == "launch"


def test_trial_settings_are_bounded_and_audited(client):
    """R-ADM-5: trial settings above TRIAL_MAX_AMOUNT / TRIAL_MAX_VALIDITY_DAYS are refused;
    a change is audited with old value, new value and reason (service and admin)."""
    staff = grant(StaffFactory(), "topups.view_trialsettings", "topups.change_trialsettings")
    trial = TrialSettings.load()
    trial.amount = cny("5000.00")
    with pytest.raises(ValidationError):
        save_trial_settings(trial, actor=staff, reason="generous")
    trial = TrialSettings.load()
    trial.validity_days = 10000
    with pytest.raises(ValidationError):
        save_trial_settings(trial, actor=staff, reason="forever")
    assert TrialSettings.load().validity_days == 30

    trial = TrialSettings.load()
    trial.amount = cny("25.00")
    save_trial_settings(trial, actor=staff, reason="Q1 campaign")
    audit = AuditRecord.objects.get(action="change_settings")
    assert audit.reason == "Q1 campaign"
    assert list(audit.details["changes"]) == ["amount"]
    assert "20.00" in audit.details["changes"]["amount"]["old"]
    assert "25.00" in audit.details["changes"]["amount"]["new"]

    client.force_login(staff)
    url = "/admin/topups/trialsettings/1/change/"
    form = {"enabled": "on", "amount_0": "30.00", "amount_1": "CNY", "validity_days": "45"}
    tf = {
        "core-auditrecord-content_type-object_id-TOTAL_FORMS": "0",
        "core-auditrecord-content_type-object_id-INITIAL_FORMS": "0",
    }
    assert client.post(url, {**form, **tf}).status_code == 200  # no reason: form error
    assert client.post(url, {**form, **tf, "reason": "longer"}).status_code == 302
    latest = AuditRecord.objects.filter(action="change_settings").order_by("-id").first()
    assert latest.reason == "longer" and latest.actor == staff
    assert latest.details["changes"]["validity_days"] == {"old": 30, "new": 45}


def test_grant_validity_is_bounded():
    """R-ADM-5: a grant's validity cannot be pushed past GRANT_MAX_VALIDITY_DAYS."""
    from billing.services.ledger import grant_funds

    customer = StaffFactory()
    trial = grant_funds(
        customer.balance_account,
        cny("20.00"),
        kind="trial",
        expires_at=timezone.now() + timedelta(days=3),
        idempotency_key="bounded-trial",
    )
    staff = grant(StaffFactory(), "topups.change_grant_validity")
    with pytest.raises(ValidationError) as err:
        change_grant_validity(
            trial, timezone.now() + timedelta(days=3650), actor=staff, reason="forever"
        )
    assert err.value.code == "expiry_too_far"
    assert not AuditRecord.objects.filter(action="change_validity").exists()
