"""Fixtures for dispute tests: third-party top-ups paid through the top-up services,
staff with the dispute permissions, a fake Alipay refund client, a controlled clock."""

import datetime
import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from disputes.services import deadline as deadline_services
from disputes.staff import STAFF_PERMISSIONS
from tests.factories import StaffFactory, grant
from tests.refunds.conftest import (  # noqa: F401 (fixtures and helpers re-used)
    FakeAlipay,
    RefundAnswer,
    assert_books_balance,
    bank_topup,
    consume,
    discount_for,
    money,
    ready_user,
    trial_for,
)
from tests.topups.conftest import PDF, signed_notification

_seq = itertools.count(1)

CS_PERMS = tuple(STAFF_PERMISSIONS["cs_agent"])
RISK_PERMS = tuple(STAFF_PERMISSIONS["risk_officer"])
FINANCE_PERMS = tuple(STAFF_PERMISSIONS["finance_approver"])


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def clerk(db):
    return grant(StaffFactory(), "topups.confirm_remittance", "topups.view_topup")


@pytest.fixture
def cs(db):
    return grant(StaffFactory(), *CS_PERMS)


@pytest.fixture
def risk(db):
    return grant(StaffFactory(), *RISK_PERMS)


@pytest.fixture
def finance(db):
    return grant(StaffFactory(), *FINANCE_PERMS)


@pytest.fixture
def alipay(monkeypatch):
    fake = FakeAlipay()
    monkeypatch.setattr("disputes.services.payouts.alipay_client", lambda: fake)
    return fake


def third_party_bank_topup(user, amount, clerk, payer="Li Si"):
    """A paid bank top-up from someone who is not the verified holder (R-TOP-3)."""
    from topups.services.orders import start_topup
    from topups.services.remittances import confirm_remittance

    topup = start_topup(user, amount, channel="bank")
    confirm_remittance(
        topup,
        actor=clerk,
        received_amount=amount,
        payer_name=payer,
        payer_account="6222000099998888",
        bank_reference=f"TPBANK{next(_seq):06d}",
    )
    topup.refresh_from_db()
    assert topup.third_party and topup.state == "paid"
    return topup


def third_party_alipay_topup(user, amount):
    from topups.services.alipay_notifications import handle_alipay_notification
    from topups.services.orders import start_topup

    topup = start_topup(user, amount, channel="alipay")
    handle_alipay_notification(signed_notification(topup, buyer_user_name="Li Si"))
    topup.refresh_from_db()
    assert topup.third_party and topup.state == "paid"
    return topup


def evidence(name="consent.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def open_for(topups, cs, amount, *, now=None, **extra):
    from disputes.services.opening import open_dispute

    fields = {
        "reported_by": "Li Si",
        "reported_via": "phone",
        "rights_holder_name": "Li Si",
        "rights_holder_contact": "13800000000",
        **extra,
    }
    return open_dispute(topups, actor=cs, amount=amount, now=now, **fields)


def after_deadline(dispute, seconds=1):
    return dispute.deadline_at + datetime.timedelta(seconds=seconds)


def run_deadline(now):
    return deadline_services.refund_due_disputes(now)
