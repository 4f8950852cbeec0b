"""The demo agreement never contradicts the rules the code enforces (issue 15)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.agreement_text import DEMO_AGREEMENT_BODY_EN, DEMO_AGREEMENT_BODY_ZH
from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage
from tests.factories import cny

pytestmark = pytest.mark.django_db


def _clause(body, number):
    """The text of clause `number` (English "6." or Chinese "六、")."""
    heads = list(re.finditer(r"(?m)^(\d+\.|[一二三四五六七八九十]+、)", body))
    for i, head in enumerate(heads):
        if head.group(1) == number:
            end = heads[i + 1].start() if i + 1 < len(heads) else len(body)
            return body[head.end() : end]
    raise AssertionError(f"no clause {number}")


def _order(text, words):
    """Bucket names in the order the clause first mentions them."""
    found = {bucket: text.find(word) for bucket, word in words.items()}
    assert all(at >= 0 for at in found.values()), found
    return sorted(found, key=found.get)


def test_the_agreement_states_the_deduction_order_the_ledger_applies(account):
    """R-USE-2: the order a charge draws on trial, discount and cash is the order the
    agreement's "using your balance" clause gives, in both languages."""
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="agreement-lot")
    grant_funds(account, cny("1"), kind="discount", expires_at=None, idempotency_key="agreement-d")
    grant_funds(
        account,
        cny("1"),
        kind="trial",
        expires_at=timezone.now() + timedelta(days=30),
        idempotency_key="agreement-t",
    )
    charge = charge_usage(account, cny("3"), request_id="agreement-order", model="m")
    applied = []
    for part in charge.split:
        if part["bucket"] not in applied:
            applied.append(part["bucket"])
    assert applied == ["trial", "discount", "cash"]
    english = _clause(DEMO_AGREEMENT_BODY_EN, "6.")
    assert _order(english, {"trial": "trial funds", "discount": "discounts", "cash": "cash"}) == (
        applied
    )
    chinese = _clause(DEMO_AGREEMENT_BODY_ZH, "六、")
    assert _order(chinese, {"trial": "试用金", "discount": "赠送金", "cash": "现金"}) == applied


def test_the_agreement_says_what_refunds_and_invoices_exclude():
    """R-REF-2, R-REF-4, R-INV-1: refunds once per top-up and never of invoiced
    unconsumed cash; invoices for consumed cash only, never trial or discount money."""
    refunds_en, invoices_en = (
        _clause(DEMO_AGREEMENT_BODY_EN, "7."),
        _clause(DEMO_AGREEMENT_BODY_EN, "8."),
    )
    assert "once per top-up" in refunds_en and "invoiced and not consumed" in refunds_en
    assert "used" in invoices_en and "never invoiced" in invoices_en
    refunds_zh, invoices_zh = (
        _clause(DEMO_AGREEMENT_BODY_ZH, "七、"),
        _clause(DEMO_AGREEMENT_BODY_ZH, "八、"),
    )
    assert "只能退款一次" in refunds_zh and "不可退款" in refunds_zh
    assert "实际消费的现金" in invoices_zh and "不开具发票" in invoices_zh


def test_the_agreement_gives_the_dispute_deadline_the_jobs_use():
    """R-DIS-1, R-DIS-3: the lock lasts 30 days before the refund to the rights holder."""
    assert "30 days" in _clause(DEMO_AGREEMENT_BODY_EN, "9.")
    assert "30 天" in _clause(DEMO_AGREEMENT_BODY_ZH, "九、")
