"""Rules decided and stated in issue 24 (point 9): what a top-up paying a debt earns, trial
funds for a verified minor, and the home page's invoice offer on a locked account."""

from datetime import date

import pytest
from django.urls import reverse

from accounts.agreement_text import DEMO_AGREEMENT_BODY_EN, DEMO_AGREEMENT_BODY_ZH
from accounts.services import change_standing
from billing.models import Grant
from billing.services.settlement import charge_usage
from tests.factories import UserFactory, cny
from topups.models import PromotionRedemption
from topups.services.trials import approve_verification

from .conftest import submit
from .test_promotions import pay, promo

pytestmark = pytest.mark.django_db


def test_the_discount_is_earned_only_on_the_part_that_becomes_cash(ready_user, finance):
    """Issue 24 point 9 (stated in the agreement, both languages): a 10 % promotion on a
    400 top-up of which 300 pays arrears earns 10 on the 100 that became spendable cash,
    not 40; a top-up that only pays a debt earns nothing."""
    from decimal import Decimal as D

    promo(benefit_type="percent", benefit_percent=D("10"), benefit_cap=cny("1000.00"),
          benefit_amount=None)  # fmt: skip
    account = ready_user.balance_account
    charge_usage(account, cny("300"), request_id="debt-300", model="m")  # arrears 300
    pay(ready_user, finance, "400.00")
    (redemption,) = PromotionRedemption.objects.all()
    assert redemption.amount == cny("10.00")
    # 10 discount, 100 cash, then 100 owed
    charge_usage(account, cny("210"), request_id="debt-210", model="m")
    pay(ready_user, finance, "100.00")  # pays the arrears only
    assert PromotionRedemption.objects.count() == 1
    assert "spendable cash" in DEMO_AGREEMENT_BODY_EN
    assert "可用现金" in DEMO_AGREEMENT_BODY_ZH


def test_a_verified_minor_receives_no_trial_funds(settings):
    """Issue 24 point 9 (stated in the agreement): a verified minor, who may not top up,
    receives no trial funds; an adult does."""
    from topups.models import TrialSettings

    row = TrialSettings.load()
    row.amount = cny("15.00")
    row.save()
    minor = UserFactory(phone="")
    today = date.today()
    approve_verification(submit(minor, birth_date=date(today.year - 15, 1, 1)))
    assert not Grant.objects.filter(account__user=minor, kind="trial").exists()
    adult = UserFactory(phone="")
    approve_verification(submit(adult))
    assert Grant.objects.filter(account__user=adult, kind="trial").exists()
    assert "under 18" in DEMO_AGREEMENT_BODY_EN and "未满18周岁" in DEMO_AGREEMENT_BODY_ZH


def test_a_locked_accounts_home_does_not_offer_an_invoice(client, ready_user):
    """Issue 24 point 9: consumed cash that could be invoiced is offered on the home page
    only when the standing lets the invoice form be used; a locked account sees no offer."""
    from billing.services.ledger import credit_lot

    account = ready_user.balance_account
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="inv-lot")
    charge_usage(account, cny("20"), request_id="inv-use", model="m")
    ready_user.language = "en"
    ready_user.save(update_fields=["language"])
    client.force_login(ready_user)
    assert "can be invoiced" in client.get(reverse("home")).content.decode()
    change_standing(account, "lock", reason="dispute")
    page = client.get(reverse("home")).content.decode()
    assert "can be invoiced" not in page
