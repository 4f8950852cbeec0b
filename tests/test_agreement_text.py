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


def test_the_agreement_states_the_package_rules_the_ledger_applies(account):
    """R-PKG-2, R-PKG-3: a package pays its models' calls first, reminder 3 days
    before expiry, consumed money (not refundable, invoiceable) — in both languages,
    as the code does it."""
    from billing.services.packages import REMINDER_DAYS, buy_package
    from tests.packages.helpers import make_package

    credit_lot(account, cny("10"), channel="alipay", idempotency_key="agreement-lot")
    buy_package(account=account, package_id=make_package().pk, idempotency_key="agreement-p")
    grant_funds(
        account,
        cny("20"),
        kind="trial",
        expires_at=timezone.now() + timedelta(days=30),
        idempotency_key="agreement-t",
    )
    charge = charge_usage(account, cny("11"), request_id="agreement-pkg", model="glm-4")
    assert [p["bucket"] for p in charge.split] == ["package", "trial"]
    english = _clause(DEMO_AGREEMENT_BODY_EN, "12.")
    assert "paid by that package first" in english and "clause 6" in english
    assert f"{REMINDER_DAYS} days before" in english.replace("\n", " ")
    assert "not refundable" in english and "invoiced" in english
    chinese = _clause(DEMO_AGREEMENT_BODY_ZH, "十二、")
    assert "先由资源包抵扣" in chinese and f"到期前 {REMINDER_DAYS} 天" in chinese
    assert "不可退款" in chinese and "开具发票" in chinese


def test_the_agreement_states_the_spend_limit_rules_the_code_enforces():
    """R-USE-7: calendar month in Beijing time and daily, hard refuses, in-flight calls
    still charged, notices at the levels the code sends."""
    from billing.services.limits import BEIJING, NOTICE_LEVELS

    assert str(BEIJING) == "Asia/Shanghai"
    english = " ".join(_clause(DEMO_AGREEMENT_BODY_EN, "13.").split())
    assert "calendar month, Beijing time" in english and "daily" in english
    assert "refused until the period ends or you raise the limit" in english
    assert "still metered and charged" in english
    levels = ", ".join(f"{n} %" for n in NOTICE_LEVELS[:-1]) + f" and {NOTICE_LEVELS[-1]} %"
    assert levels in english
    chinese = _clause(DEMO_AGREEMENT_BODY_ZH, "十三、")
    assert "北京时间自然月" in chinese and "仍会计量和扣费" in chinese
    assert "、".join(f"{n}%" for n in NOTICE_LEVELS[:-1]) + f" 和 {NOTICE_LEVELS[-1]}%" in chinese


from tests.refunds.conftest import _private_media as _private_media  # noqa: E402
from tests.refunds.conftest import clerk as clerk  # noqa: E402
from tests.refunds.conftest import cs as cs  # noqa: E402
from tests.refunds.conftest import finance as finance  # noqa: E402
from tests.refunds.conftest import ready_user as ready_user  # noqa: E402 (the fixtures)


def test_the_agreement_states_the_refund_discount_rules_the_code_applies(
    ready_user, clerk, cs, finance
):
    """R-REF-7 / §8.2 (issue 24): the refunds clause says, in both languages, that the
    discount used is deducted from the refund, leaves the balance on approval and that
    the top-up's discounts are void; the code does exactly that."""
    from refunds.services.decisions import approve_refund, take_for_review
    from refunds.services.filing import submit_refund
    from tests.refunds.conftest import bank_topup, consume, discount_for, money, proof

    english = _clause(DEMO_AGREEMENT_BODY_EN, "7.")
    assert "deducted from the refund" in english and "leaves your balance" in english
    assert "void" in english
    chinese = _clause(DEMO_AGREEMENT_BODY_ZH, "七、")
    assert "从退款中扣除" in chinese and "从余额中扣回" in chinese and "作废" in chinese
    account = ready_user.balance_account
    topup = bank_topup(ready_user, "100.00", clerk)
    grant = discount_for(topup, "10.00")
    consume(account, "15.00")  # 10 of discount, 5 of cash
    request = submit_refund(ready_user, proofs=[proof()])
    assert request.held.amount == 85  # deducted from the refund
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    grant.refresh_from_db()
    assert grant.state == "voided"  # void
    assert money(account)["cash"] == 0 and money(account)["discount"] == 0  # left the balance
