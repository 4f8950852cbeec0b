"""The top-up pages tell the user what happened and what comes next (issue 15)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import cny
from tests.refunds.conftest import clerk as clerk  # the fixtures
from tests.refunds.conftest import ready_user as ready_user
from topups.models import TopUpState
from topups.services.orders import start_topup
from topups.services.remittances import confirm_remittance

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, ready_user):
    ready_user.language = "en"
    ready_user.save(update_fields=["language"])
    client.force_login(ready_user)
    return client


def test_a_differing_amount_shows_both_figures_and_what_happens_next(signed_in, ready_user, clerk):
    """R-TOP-3: ordered and received amounts both shown, with why and the next step."""
    topup = start_topup(ready_user, cny("100"), channel="bank")
    confirm_remittance(
        topup,
        actor=clerk,
        received_amount="99.50",
        payer_name="Zhang San",
        payer_account="6222000011112222",
        bank_reference="BANK-DIFF-1",
    )
    topup.refresh_from_db()
    assert topup.state == TopUpState.REVIEW
    page = signed_in.get(reverse("topups:detail", args=[topup.pk])).content.decode()
    assert "¥100.00" in page and "¥99.50" in page and 'id="amount-differs"' in page
    assert "finance checks the payment" in page


def test_an_unpaid_alipay_order_can_be_paid_later(signed_in, ready_user):
    """R-TOP-1: the same order goes back to Alipay's cashier (same order number)."""
    topup = start_topup(ready_user, cny("20"), channel="alipay")
    page = signed_in.get(reverse("topups:detail", args=[topup.pk])).content.decode()
    assert 'id="pay-now"' in page
    response = signed_in.post(reverse("topups:pay", args=[topup.pk]))
    assert response.status_code == 302 and topup.out_trade_no in response["Location"]


def test_a_closed_or_foreign_order_cannot_be_paid(signed_in, ready_user, client):
    """An expired order is refused with a message; another user's order is 404."""
    topup = start_topup(ready_user, cny("20"), channel="alipay")
    type(topup).objects.filter(pk=topup.pk).update(expires_at=timezone.now())
    response = signed_in.post(reverse("topups:pay", args=[topup.pk]), follow=True)
    assert "can no longer be paid" in response.content.decode()
    from tests.factories import UserFactory  # noqa: PLC0415

    client.force_login(UserFactory())
    assert client.post(reverse("topups:pay", args=[topup.pk])).status_code == 404


def test_a_refused_form_keeps_what_was_typed_and_links_to_the_fix(client, user):
    """An unverified user's amount stays in the form, with a link to verification."""
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    response = client.post(reverse("topups:start"), {"amount": "66.60", "channel": "alipay"})
    page = response.content.decode()
    assert 'value="66.60"' in page
    assert "Complete real-name verification" in page
    assert reverse("accounts:verification") in page.split('id="preconditions"')[1]


def test_the_refusal_reaches_a_chinese_user_in_chinese(client, user):
    """R-ADM-6: the preconditions are translated."""
    user.language = "zh-hans"
    user.save(update_fields=["language"])
    client.force_login(user)
    page = client.get(reverse("topups:start")).content.decode()
    assert "充值前请先完成实名认证" in page
