"""Fixtures for top-up tests: a verified adult with the agreement accepted, Alipay helpers."""

import itertools
from datetime import date, timedelta

import pytest
from django.utils import timezone

from tests.factories import StaffFactory, UserFactory, grant
from topups import alipay
from topups.sandbox import sandbox_alipay_private_key

_ids = itertools.count(1)


def make_agreement(version="2026.1"):
    from accounts.models import AgreementVersion

    return AgreementVersion.objects.create(
        version=version,
        title="Service agreement",
        body="Demo terms written for tests.",
        effective_at=timezone.now() - timedelta(days=1),
        state="published",
    )


def verify(
    user,
    *,
    kind="individual",
    legal_name="Zhang San",
    birth_date=date(1990, 5, 17),
    company_name="",
    identity_hash=None,
):
    """An approved real-name verification (R-ACC-2), created directly for speed."""
    from accounts.models import Verification

    return Verification.objects.create(
        user=user,
        kind=kind,
        state="approved",
        legal_name=legal_name if kind == "individual" else "",
        company_name=company_name if kind == "enterprise" else "",
        birth_date=birth_date if kind == "individual" else None,
        identity_hash=identity_hash or f"test-identity-{next(_ids)}",
    )


def accept(user, agreement):
    from accounts.services import accept_agreement

    return accept_agreement(user, agreement, ip="127.0.0.1")


@pytest.fixture
def agreement(db):
    return make_agreement()


@pytest.fixture
def ready_user(agreement):
    """A verified adult who accepted the agreement in force: may top up."""
    user = UserFactory()
    verify(user)
    accept(user, agreement)
    return user


@pytest.fixture
def finance(db):
    staff = StaffFactory()
    return grant(
        staff,
        "topups.confirm_remittance",
        "topups.resolve_review",
        "topups.view_topup",
    )


def signed_notification(topup, *, key=None, **overrides):
    """A notification as Alipay would post it for `topup`, RSA2-signed (sandbox key)."""
    from django.conf import settings

    params = {
        "notify_time": "2026-11-28 10:00:00",
        "notify_type": "trade_status_sync",
        "notify_id": f"n{next(_ids)}",
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "app_id": settings.ALIPAY_APP_ID,
        "seller_id": settings.ALIPAY_SELLER_ID,
        "trade_no": f"2026112822001{topup.pk:08d}",
        "out_trade_no": topup.out_trade_no,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": f"{topup.amount.amount:.2f}",
        "buyer_logon_id": "buy***@example.com",
        "buyer_id": "2088102177846880",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    params["sign"] = alipay.sign(
        params, key or sandbox_alipay_private_key(), exclude=("sign", "sign_type")
    )
    return params


def balance(user):
    from billing.selectors import balance_summary

    return balance_summary(user.balance_account)
