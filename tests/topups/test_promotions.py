"""Promotions (R-TOP-4): best single benefit, eligibility, quantity under races, voiding."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import Grant
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory, cny, grant
from topups.models import Promotion, PromotionRedemption
from topups.services.orders import start_topup
from topups.services.promotions import end_promotion
from topups.services.remittances import confirm_remittance

from .conftest import accept, balance, verify


def promo(**kw):
    data = {
        "name": kw.pop("name", "Promo"),
        "kind": "topup_discount",
        "benefit_type": "fixed",
        "benefit_amount": cny("5.00"),
        "starts_at": timezone.now() - timedelta(days=1),
    }
    data.update(kw)
    p = Promotion(**data)
    p.full_clean(exclude=["state"])
    p.save()
    return p


@pytest.fixture
def finance_user(finance):
    return finance


def pay(user, finance, amount="100.00"):
    topup = start_topup(user, amount, channel="bank")
    return confirm_remittance(
        topup,
        actor=finance,
        received_amount=amount,
        payer_name="",
        payer_account="x",
        bank_reference=f"B{topup.pk}",
    )


def test_benefit_fixed_and_percent_capped():
    """R-TOP-4: fixed amount, or percent of the top-up rounded down to the fen and capped."""
    fixed = Promotion(benefit_type="fixed", benefit_amount=cny("8.00"))
    pct = Promotion(benefit_type="percent", benefit_percent=Decimal("10"), benefit_cap=cny("30.00"))
    assert fixed.benefit_for(cny("1.00")) == cny("8.00")
    assert pct.benefit_for(cny("123.45")) == cny("12.34")
    assert pct.benefit_for(cny("1000.00")) == cny("30.00")


@pytest.mark.django_db
def test_best_benefit_wins_no_stacking(ready_user, finance):
    """R-TOP-4: of several qualifying promotions exactly one applies, the most valuable."""
    promo(name="small", benefit_amount=cny("5.00"), priority=100)
    best = promo(
        name="ten percent",
        benefit_type="percent",
        benefit_amount=None,
        benefit_percent=Decimal("10"),
        benefit_cap=cny("50.00"),
    )
    topup = pay(ready_user, finance, "200.00")
    redemption = PromotionRedemption.objects.get()
    assert redemption.promotion == best
    assert redemption.amount == cny("20.00")
    assert redemption.grant.kind == "discount"
    assert redemption.grant.source_lot_id == topup.lot_id
    assert balance(ready_user)["discount"] == cny("20.00")
    assert Grant.objects.filter(kind="discount").count() == 1


@pytest.mark.django_db
def test_tie_broken_by_priority(ready_user, finance):
    """R-TOP-4: equal benefits — the higher staff priority wins."""
    promo(name="low", priority=1)
    high = promo(name="high", priority=9)
    pay(ready_user, finance)
    assert PromotionRedemption.objects.get().promotion == high


@pytest.mark.django_db
def test_eligibility_rules(ready_user, finance, agreement):
    """R-TOP-4: window, minimum top-up, account kind, new-customers-only and per-user limit."""
    promo(
        name="ended window",
        ends_at=timezone.now() - timedelta(hours=1),
        starts_at=timezone.now() - timedelta(days=2),
        benefit_amount=cny("90.00"),
    )
    promo(
        name="future",
        starts_at=timezone.now() + timedelta(days=1),
        benefit_amount=cny("80.00"),
    )
    promo(name="min 1000", min_topup=cny("1000.00"), benefit_amount=cny("70.00"))
    promo(name="enterprise", account_kind="enterprise", benefit_amount=cny("60.00"))
    newcomer = promo(name="newcomer", new_customers_only=True, benefit_amount=cny("50.00"))
    once = promo(name="once", per_user_limit=1, benefit_amount=cny("40.00"))
    general = promo(name="general", benefit_amount=cny("1.00"))

    pay(ready_user, finance)
    pay(ready_user, finance)
    pay(ready_user, finance)
    got = list(
        PromotionRedemption.objects.order_by("topup_id").values_list("promotion_id", flat=True)
    )
    assert got == [newcomer.pk, once.pk, general.pk]

    company = UserFactory()
    verify(company, kind="enterprise", company_name="Acme Ltd")
    accept(company, agreement)
    pay(company, finance)
    assert PromotionRedemption.objects.get(account__user=company).promotion.name == "enterprise"


@pytest.mark.django_db
def test_quantity_limit_sequential(ready_user, finance):
    """R-TOP-4: a total quantity of 1 gives one benefit."""
    p = promo(kind="limited_quantity_discount", total_quantity=1)
    pay(ready_user, finance)
    pay(ready_user, finance)
    p.refresh_from_db()
    assert p.used_quantity == 1
    assert PromotionRedemption.objects.count() == 1


@pytest.mark.django_db
def test_promotion_validation():
    """R-TOP-4: a limited-quantity promotion needs a quantity; percent needs a cap."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        Promotion(
            name="x",
            kind="limited_quantity_discount",
            benefit_type="fixed",
            benefit_amount=cny("1"),
        ).full_clean(exclude=["state"])
    with pytest.raises(ValidationError):
        Promotion(
            name="x", kind="topup_discount", benefit_type="percent", benefit_percent=Decimal("10")
        ).full_clean(exclude=["state"])


@pytest.mark.django_db(transaction=True)
def test_quantity_holds_with_8_concurrent_top_ups(agreement):
    """R-TOP-4, R-LED-6: 8 top-ups racing for the last 3 units get exactly 3 benefits."""
    finance = grant(StaffFactory(), "topups.confirm_remittance")
    p = promo(kind="limited_quantity_discount", total_quantity=3)
    orders = []
    for _ in range(8):
        user = UserFactory()
        verify(user)
        accept(user, agreement)
        orders.append(start_topup(user, "100.00", channel="bank"))
    barrier = threading.Barrier(8)
    errors = []

    def confirm(order):
        try:
            barrier.wait()
            confirm_remittance(
                order,
                actor=finance,
                received_amount="100.00",
                payer_name="",
                payer_account="x",
                bank_reference=f"R{order.pk}",
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    p.refresh_from_db()
    assert p.used_quantity == 3
    assert PromotionRedemption.objects.count() == 3
    assert Grant.objects.filter(kind="discount").count() == 3


@pytest.mark.django_db
def test_ending_a_promotion_voids_unused_benefits(ready_user, finance):
    """R-TOP-4: ending with void takes back what is unused, with ledger entries and a notice."""
    ender = grant(StaffFactory(), "topups.end_promotion")
    p = promo()
    pay(ready_user, finance)
    assert balance(ready_user)["discount"] == cny("5.00")
    end_promotion(p, actor=ender, reason="campaign over", void_unused=True)
    p.refresh_from_db()
    assert p.state == "ended"
    assert balance(ready_user)["discount"] == cny(0)
    assert balance(ready_user)["cash"] == cny("100.00")
    assert PromotionRedemption.objects.get().voided_at is not None
    assert Notice.objects.filter(user=ready_user, kind="promotion_benefit_voided").count() == 1
    # an ended promotion applies to nothing more
    pay(ready_user, finance)
    assert PromotionRedemption.objects.count() == 1


@pytest.mark.django_db
def test_ending_needs_the_permission(ready_user):
    """R-TOP-4: staff without the permission cannot end a promotion."""
    from django.core.exceptions import PermissionDenied

    p = promo()
    with pytest.raises(PermissionDenied):
        end_promotion(p, actor=StaffFactory(), reason="no")
    p.refresh_from_db()
    assert p.state == "active"


@pytest.mark.django_db
def test_promotion_admin_counts_without_n_plus_1(
    admin_client, ready_user, finance, django_assert_max_num_queries
):
    """R-TOP-4: the promotion list shows redemption counts from one annotated query."""
    for i in range(4):
        promo(name=f"p{i}")
    pay(ready_user, finance)
    with django_assert_max_num_queries(10):
        response = admin_client.get("/admin/topups/promotion/")
    assert response.status_code == 200
