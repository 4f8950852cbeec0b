"""Fixtures for refund tests: paid top-ups made through the top-up services, staff with
the refund groups' permissions, a fake Alipay refund client."""

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.selectors import balance_summary
from billing.services.reconcile import reconcile
from tests.factories import StaffFactory, cny, grant
from tests.topups.conftest import PDF, accept, make_agreement, signed_notification, verify

_seq = itertools.count(1)

CS_PERMS = (
    "refunds.view_refundrequest",
    "refunds.file_refundrequest",
    "refunds.review_refundrequest",
    "refunds.reject_refundrequest",
    "refunds.cancel_refundrequest",
    "refunds.view_refund_proof",
)
FINANCE_PERMS = (
    "refunds.view_refundrequest",
    "refunds.approve_refundrequest",
    "refunds.reject_refundrequest",
    "refunds.pay_refundrequest",
    "refunds.view_refund_proof",
    # a finance approver may also review: four eyes still keeps them from approving it
    "refunds.review_refundrequest",
)


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def ready_user(user):
    """The shared `user`, verified and having accepted the agreement: may top up."""
    agreement = make_agreement()
    verify(user)
    accept(user, agreement)
    return user


@pytest.fixture
def clerk(db):
    """Finance staff who confirm remittances (the top-up side)."""
    return grant(StaffFactory(), "topups.confirm_remittance", "topups.view_topup")


@pytest.fixture
def cs(db):
    return grant(StaffFactory(), *CS_PERMS)


@pytest.fixture
def finance(db):
    return grant(StaffFactory(), *FINANCE_PERMS)


@pytest.fixture
def finance2(db):
    return grant(StaffFactory(), *FINANCE_PERMS)


def proof(name="proof.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def bank_topup(user, amount, clerk):
    """A paid bank top-up: the user starts it, finance confirms the remittance."""
    from topups.services.orders import start_topup
    from topups.services.remittances import confirm_remittance

    topup = start_topup(user, amount, channel="bank")
    confirm_remittance(
        topup,
        actor=clerk,
        received_amount=amount,
        payer_name="Zhang San",
        payer_account="6222000011112222",
        bank_reference=f"BANK{next(_seq):06d}",
    )
    topup.refresh_from_db()
    return topup


def alipay_topup(user, amount):
    """A paid Alipay top-up: the order, then Alipay's signed notification."""
    from topups.services.alipay_notifications import handle_alipay_notification
    from topups.services.orders import start_topup

    topup = start_topup(user, amount, channel="alipay")
    handle_alipay_notification(signed_notification(topup))
    topup.refresh_from_db()
    assert topup.state == "paid"
    return topup


def discount_for(topup, amount):
    """A discount grant earned by this top-up's lot (what a promotion gives, R-TOP-4)."""
    from billing.services.ledger import grant_funds

    return grant_funds(
        topup.account,
        cny(amount),
        kind="discount",
        expires_at=None,
        source_lot=topup.lot,
        idempotency_key=f"test-discount:{next(_seq)}",
    )


def trial_for(account, amount):
    from billing.services.ledger import grant_funds

    return grant_funds(
        account,
        cny(amount),
        kind="trial",
        expires_at=None,
        idempotency_key=f"test-trial:{next(_seq)}",
    )


def consume(account, amount):
    from billing.services.settlement import charge_usage

    return charge_usage(account, cny(amount), request_id=f"use-{next(_seq)}", model="m")


def money(account):
    """balance_summary as Decimals."""
    return {k: v.amount for k, v in balance_summary(account).items()}


def assert_books_balance(account=None):
    report = reconcile(account)
    assert report.ok, report.summary()


@dataclass
class RefundAnswer:
    ok: bool
    fund_change: bool
    code: str = "10000"
    sub_code: str = ""
    message: str = "Success"
    refund_amount: Decimal | None = None
    raw: dict = field(default_factory=dict)


class FakeAlipay:
    """Stands in for topups.alipay_refunds: scripted answers, every call recorded."""

    class AlipayUnavailable(Exception):
        pass

    def __init__(self):
        self.refund_script = []  # answers or exceptions, in order; then success
        self.query_script = []
        self.calls = []

    def _next(self, script, default):
        item = script.pop(0) if script else default
        if isinstance(item, Exception):
            raise item
        return item

    def request_refund(self, *, out_trade_no, trade_no, amount, out_request_no, reason):
        self.calls.append(("refund", out_request_no, amount))
        return self._next(self.refund_script, RefundAnswer(True, True, refund_amount=amount.amount))

    def query_refund(self, *, out_trade_no, trade_no, out_request_no):
        self.calls.append(("query", out_request_no, None))
        return self._next(self.query_script, RefundAnswer(True, False))


@pytest.fixture
def alipay(monkeypatch):
    fake = FakeAlipay()
    monkeypatch.setattr("refunds.services.payouts.alipay_client", lambda: fake)
    return fake


@pytest.fixture
def queued(monkeypatch):
    """Alipay payout tasks queued on commit, recorded instead of sent to a broker."""
    from refunds import tasks

    sent = []
    monkeypatch.setattr(tasks.pay_out_alipay_line, "delay", lambda line_id: sent.append(line_id))
    return sent
