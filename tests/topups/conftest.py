"""Fixtures for top-up tests: a verified adult with the agreement accepted, Alipay helpers."""

import itertools
from datetime import date, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.identity import make_credit_code, make_resident_id
from tests.factories import StaffFactory, grant
from topups import alipay
from topups.sandbox import sandbox_alipay_private_key

_ids = itertools.count(1)
PDF = b"%PDF-1.4\n% test licence\n%%EOF\n"


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    """Encrypted verification documents go to a throwaway folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


def make_agreement(version="2026.1"):
    from accounts.models import AgreementVersion

    return AgreementVersion.objects.create(
        version=version,
        title="Service agreement",
        body="Demo terms written for tests.",
        effective_at=timezone.now() - timedelta(days=1),
        state="published",
    )


def submit(
    user,
    *,
    kind="individual",
    legal_name="Zhang San",
    birth_date=date(1990, 5, 17),
    company_name="",
    id_number=None,
    credit_code=None,
):
    """A real-name verification submitted by the user (R-ACC-2), through accounts' service.

    Each call gets a fresh ID number (or credit code); pass the same `id_number`
    (or `credit_code`) to give two users one identity (R-ACC-4).
    """
    from accounts.services import submit_verification

    if kind == "individual":
        return submit_verification(
            user,
            kind=kind,
            legal_name=legal_name,
            id_number=id_number or make_resident_id(birth_date, sequence=next(_ids) % 1000),
            phone="13800000000",
        )
    return submit_verification(
        user,
        kind=kind,
        company_name=company_name or "Acme Models Ltd.",
        credit_code=credit_code or make_credit_code(f"91110108MA01{next(_ids) % 100000:05d}"),
        legal_representative="Zhao Lei",
        phone="01050000000",
        licence_file=SimpleUploadedFile("licence.pdf", PDF, content_type="application/pdf"),
    )


def verify(user, **identity):
    """An approved real-name verification (R-ACC-2): submitted, then approved by accounts.

    Identity-level approval (accounts.services.approve_verification), as CS's
    decision minus the trial funds that topups.services.trials adds (R-TOP-5):
    balances in top-up tests hold only what the test puts there. Takes submit()'s
    keywords.
    """
    from accounts.services import approve_verification

    return approve_verification(submit(user, **identity), reason="test: documents match")


def accept(user, agreement):
    from accounts.services import accept_agreement

    return accept_agreement(user, agreement, ip="127.0.0.1")


@pytest.fixture
def agreement(db):
    return make_agreement()


@pytest.fixture
def ready_user(user, agreement):
    """The shared `user`, verified as an adult and having accepted the agreement in force:
    may top up."""
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
