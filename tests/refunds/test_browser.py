"""The refund desk end to end in the browser (R-REF-1, R-REF-3, R-REF-5, R-ADM-4)."""

import pytest

from refunds.models import RefundRequest
from tests.factories import PASSWORD, StaffFactory, grant

from .conftest import CS_PERMS, FINANCE_PERMS, PDF, bank_topup, consume, money


def _login(page, email):
    page.goto("/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


def _admin_login(page, email):
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def _press(page, refund, transition, **fields):
    page.goto(f"/admin/refunds/refundrequest/{refund.pk}/change/")
    page.click(f"a[data-transition={transition}]")
    for name, value in fields.items():
        page.fill(f"#id_{name}", value)
    page.click("input[type=submit][value=Apply]")
    page.wait_for_selector(".messagelist")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_user_asks_cs_reviews_finance_approves_and_pays_user_sees_it_paid(page, ready_user, clerk):
    """R-REF-1: the user files with a proof, a CS agent takes it, a finance approver (not
    the reviewer) approves and records the bank transfer, and the user sees it paid."""
    bank_topup(ready_user, "100.00", clerk)
    consume(ready_user.balance_account, "25.00")
    cs = grant(StaffFactory(), *CS_PERMS, "core.view_auditrecord")
    finance = grant(StaffFactory(), *FINANCE_PERMS, "core.view_auditrecord")

    _login(page, ready_user.email)
    page.click("#nav-refunds")
    assert page.inner_text("#refund-total") == "¥75.00"
    page.fill("#id_reason", "We no longer need the service")
    page.set_input_files(
        "#id_proofs", files=[{"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.click("#refund-form button[type=submit]")
    page.wait_for_selector("#refund-state")
    assert page.inner_text("#refund-state") == "Submitted"
    refund = RefundRequest.objects.get()
    assert money(ready_user.balance_account)["hold"] == 75

    _admin_login(page, cs.email)
    _press(page, refund, "take", reason="documents in order")
    refund.refresh_from_db()
    assert refund.state == "under_review" and refund.reviewer == cs

    _admin_login(page, finance.email)
    _press(page, refund, "approve", reason="checked")
    _press(page, refund, "start_payout", reason="by bank")
    _press(
        page,
        refund,
        "record_transfer",
        bank_reference="ICBC-2026-1130-7",
        transferred_on="2026-11-30",
    )
    refund.refresh_from_db()
    assert refund.state == "paid" and refund.approver == finance

    _login(page, ready_user.email)
    page.goto(f"/refunds/{refund.pk}/")
    assert page.inner_text("#refund-state") == "Paid out"
    assert page.inner_text("#refund-refunded") == "¥75.00"
    figures = money(ready_user.balance_account)
    assert figures["hold"] == 0 and figures["cash"] == 0
