"""Top-up preconditions (R-TOP-1 with R-ACC-2/3/7/8): refused, nothing stored."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from accounts.services import change_standing
from topups.models import TopUp
from topups.services.orders import start_topup
from topups.services.preconditions import TopUpRefused

from .conftest import accept, verify


def _codes(exc):
    return {p.code for p in exc.problems}


def _refused(user, amount="100.00", **kwargs):
    before = TopUp.objects.count()
    with pytest.raises(TopUpRefused) as caught:
        start_topup(user, amount, channel=kwargs.pop("channel", "alipay"), **kwargs)
    assert TopUp.objects.count() == before
    return _codes(caught.value)


@pytest.mark.django_db
def test_ready_user_creates_an_order_with_the_acceptance(ready_user):
    """R-TOP-1, R-ACC-7: a top-up stores the acceptance of the version in force."""
    topup = start_topup(ready_user, "100.00", channel="alipay")
    assert topup.state == "created"
    assert str(topup.amount.amount) == "100.00"
    assert topup.acceptance.user == ready_user
    assert topup.expires_at > timezone.now()


@pytest.mark.django_db
def test_unverified_user_is_refused(agreement, user):
    """R-TOP-1, R-ACC-2: no approved verification, no top-up."""
    accept(user, agreement)
    assert "not_verified" in _refused(user)


@pytest.mark.django_db
def test_minor_is_refused(agreement, user):
    """R-ACC-3: a 17-year-old (by birth date) cannot top up."""
    today = timezone.localdate()
    verify(user, birth_date=date(today.year - 17, 1, 1))
    accept(user, agreement)
    assert "no_capacity" in _refused(user)


@pytest.mark.django_db
def test_frozen_account_is_refused(ready_user):
    """R-ACC-8: a frozen account cannot top up."""
    change_standing(
        ready_user.balance_account,
        "freeze",
        authority="Court",
        document_number="X-1",
        reason="order",
    )
    fresh = type(ready_user).objects.get(pk=ready_user.pk)
    assert "standing" in _refused(fresh)


@pytest.mark.django_db
def test_agreement_must_be_accepted_then_acceptance_on_the_page_is_recorded(agreement, user):
    """R-ACC-7: without acceptance refused; accepting the version in force with the order works."""
    verify(user)
    assert "agreement_not_accepted" in _refused(user)
    topup = start_topup(user, "50.00", channel="bank", accept_version=agreement.pk, ip="10.0.0.1")
    assert topup.acceptance.version == agreement
    assert topup.remittance_reference


@pytest.mark.django_db
@pytest.mark.parametrize(
    "amount,currency,code",
    [
        ("100.001", "CNY", "too_many_decimals"),
        ("100.00", "USD", "wrong_currency"),
        ("0", "CNY", "non_positive_amount"),
        ("-5.00", "CNY", "non_positive_amount"),
        ("abc", "CNY", "invalid_amount"),
        ("0.50", "CNY", "below_minimum"),
        ("50000.01", "CNY", "above_maximum"),
    ],
)
def test_bad_amounts_are_refused(ready_user, amount, currency, code):
    """R-TOP-1: whole fen, CNY, within the configured min/max — else refused, nothing stored."""
    assert code in _refused(ready_user, amount, currency=currency)


@pytest.mark.django_db
def test_min_max_come_from_settings(ready_user, settings):
    """R-TOP-1: the limits are configuration."""
    from decimal import Decimal

    settings.TOPUP_MAX = Decimal("10.00")
    assert "above_maximum" in _refused(ready_user, "10.01")
    assert start_topup(ready_user, "10.00", channel="alipay").pk


@pytest.mark.django_db
def test_other_channel_is_finance_only(ready_user):
    """R-TOP-1: the manual channel is not open to users."""
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        start_topup(ready_user, "10.00", channel="other", actor=ready_user)
    assert not TopUp.objects.exists()


@pytest.mark.django_db
def test_page_explains_what_is_missing(client, agreement, user):
    """R-TOP-1: the top-up page lists the unmet preconditions."""
    client.force_login(user)
    response = client.get("/topups/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "real-name verification" in body
    assert "problem-agreement_not_accepted" in body


@pytest.mark.django_db
def test_page_post_with_bad_amount_changes_nothing(client, ready_user):
    """R-TOP-1: a 3-decimal amount posted on the page is refused with a message."""
    client.force_login(ready_user)
    response = client.post("/topups/", {"amount": "12.345", "channel": "bank"})
    assert response.status_code == 200
    assert "At most 2 decimal places" in response.content.decode()
    assert not TopUp.objects.exists()


@pytest.mark.django_db
def test_expiry_window_from_settings(ready_user, settings):
    """R-TOP-1: the unpaid window is configuration."""
    settings.TOPUP_EXPIRE_MINUTES = 5
    topup = start_topup(ready_user, "10.00", channel="alipay")
    assert topup.expires_at - topup.created_at <= timedelta(minutes=5, seconds=5)
