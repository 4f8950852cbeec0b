"""Each staff role works its cases to the end in the admin, in Chinese (issue 21, part 4):
CS find the oldest refund and take it; finance approve it, start the payout and see the
Alipay sandbox pay it; risk accept evidence on a dispute near its deadline; finance issue
an invoice with the tax platform's files; CS open a dispute from the customer page.

Staff log in with their saved language zh-hans and a Chinese browser; after every button
the page says what happens next. Screenshots are kept under var/test-artifacts/staff/."""

import datetime
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone, translation

from tests.factories import PASSWORD, StaffFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTEFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "staff"


def _shot(page, name):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def _staff(*groups):
    """A staff member in the given staff groups, who reads the admin in Chinese."""
    person = StaffFactory(language="zh-hans")
    person.groups.set([Group.objects.get(name=name) for name in groups])
    return person


@pytest.fixture
def zh(browser, live_server):
    context = browser.new_context(base_url=live_server.url, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        yield page
    finally:
        context.close()


def _admin_login(page, person):
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("#id_username", person.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")
    assert page.locator("html").get_attribute("lang") == "zh-hans"


def _press(page, transition, **fields):
    """Press a transition button on the open case page and apply it with a reason."""
    page.click(f"a[data-transition={transition}]")
    for name, value in fields.items():
        page.fill(f"#id_{name}", value)
    page.click("form input[type=submit]")
    page.wait_for_selector(".messagelist")
    return page.inner_text(".messagelist")


@pytest.fixture
def refund_case(ready_user, settings, live_server):
    """Two refund requests of Alipay top-ups; the first one filed is the oldest."""
    from accounts.selectors import agreement_in_force
    from refunds.models import RefundRequest
    from refunds.services.filing import submit_refund
    from tests.refunds.conftest import alipay_topup, proof
    from tests.topups.conftest import accept, verify

    settings.PORTAL_BASE_URL = live_server.url  # the Alipay sandbox answers here
    alipay_topup(ready_user, "66.00")
    oldest = submit_refund(ready_user, proofs=[proof()], reason="不再使用")
    other = UserFactory(phone="")
    verify(other)
    accept(other, agreement_in_force())
    alipay_topup(other, "20.00")
    newer = submit_refund(other, proofs=[proof()], reason="重复充值")
    RefundRequest.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=2)
    )
    return oldest, newer


def test_cs_finds_the_oldest_refund_takes_it_and_finance_pays_it_through_alipay(
    zh, refund_case, queued
):
    """R-REF-1, R-REF-5: CS open the refund queue from the workbench, the oldest case
    first, read its held lots and take it; a finance approver approves and starts the
    payout; the Alipay sandbox pays it and finance see it paid."""
    from refunds.models import RefundState
    from refunds.services.payouts import send_alipay_refund
    from topups import sandbox

    oldest, _newer = refund_case
    cs = _staff("CS agent")
    finance = _staff("Finance approver")

    _admin_login(zh, cs)
    _shot(zh, "cs-workbench")
    zh.click("tr.tile[data-queue] a[href*='refundrequest'][href*='state__exact=submitted']")
    zh.wait_for_selector("#result_list")
    first = zh.locator("#result_list tbody tr").first
    assert first.locator("th a, td a").first.inner_text().strip() == str(oldest.pk)
    first.locator("th a").first.click()
    zh.wait_for_selector(".case-lots")
    assert "¥66.00" in zh.inner_text(".case-lots")
    _shot(zh, "cs-refund-case")
    said = _press(zh, "take", reason="聊天记录已核对")
    assert "下一步" in said
    # approving is not CS's button: not offered, and the page says who approves
    assert zh.locator("a[data-transition=approve]").count() == 0
    assert zh.locator(".workflow-refusal").count() >= 1
    _shot(zh, "cs-refund-taken")
    oldest.refresh_from_db()
    assert oldest.state == RefundState.UNDER_REVIEW and oldest.reviewer == cs

    _admin_login(zh, finance)
    zh.goto(f"/admin/refunds/refundrequest/{oldest.pk}/change/")
    said = _press(zh, "approve", reason="材料齐全")
    assert "下一步" in said and "开始支付" in said
    said = _press(zh, "start_payout", reason="原路退回")
    assert "下一步" in said
    (line,) = oldest.lines.all()
    assert queued == [line.pk]
    try:
        assert send_alipay_refund(line.pk) == "done"  # the worker, against the sandbox
        zh.goto(f"/admin/refunds/refundrequest/{oldest.pk}/change/")
        oldest.refresh_from_db()
        assert oldest.state == RefundState.PAID
        with translation.override("zh-hans"):
            assert oldest.get_state_display() in zh.inner_text("div.field-state")
        _shot(zh, "finance-refund-paid")
    finally:
        sandbox.reset(line.lot.topup.out_trade_no)


def test_risk_accepts_evidence_on_a_dispute_near_its_deadline(zh, ready_user):
    """R-DIS-2: the dispute queue shows the case with the fewest days left first; a risk
    officer opens it and accepts the evidence; the case is cleared."""
    from disputes.models import Dispute, DisputeState
    from disputes.services.opening import add_evidence
    from tests.disputes.conftest import evidence, open_for, third_party_bank_topup

    clerk = _staff("Finance approver")
    cs = _staff("CS agent")
    near = open_for([third_party_bank_topup(ready_user, "80.00", clerk)], cs, "80.00")
    add_evidence(near, evidence(), actor=cs, note="付款人签字的授权书")
    Dispute.objects.filter(pk=near.pk).update(
        deadline_at=timezone.now() + datetime.timedelta(hours=20)
    )
    risk = _staff("Risk officer")

    _admin_login(zh, risk)
    zh.goto("/admin/disputes/dispute/")
    first = zh.locator("#result_list tbody tr").first
    assert first.locator("th a").first.inner_text().strip() == str(near.pk)
    first.locator("th a").first.click()
    _shot(zh, "risk-dispute-case")
    said = _press(zh, "accept_evidence", reason="签字与付款人一致")
    _shot(zh, "risk-dispute-cleared")
    near.refresh_from_db()
    assert near.state == DisputeState.CLEARED
    assert "下一步" in said or "无需再操作" in said


def test_finance_issues_an_invoice_with_the_tax_platforms_files(zh, ready_user):
    """R-INV-3: finance open the invoice request, upload the tax platform's XML and PDF
    (invoices/samples/), check them against the request and issue it."""
    from invoices.models import InvoiceRequest, InvoiceState
    from invoices.services.filing import submit_invoice
    from tests.invoices.conftest import SAMPLE_PDF, invoice_xml
    from tests.refunds.conftest import bank_topup, consume

    finance = _staff("Finance approver")
    bank_topup(ready_user, "100.00", _staff("Finance approver"))
    consume(ready_user.balance_account, "60.00")
    request = submit_invoice(
        ready_user,
        amount="60.00",
        title="Zhang San",  # the verified name (tests.topups.conftest.submit)
    )
    xml = invoice_xml(number="26110000000000009101", buyer="Zhang San", buyer_id="", total="60.00")
    files = {
        "#id_xml": {"name": "invoice.xml", "mimeType": "application/xml", "buffer": xml},
        "#id_pdf": {"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": SAMPLE_PDF},
    }
    _admin_login(zh, finance)
    zh.goto(f"/admin/invoices/invoicerequest/{request.pk}/change/")
    issue = reverse_issue(request.pk)
    zh.click(f"a[href='{issue}']")
    for selector, file in files.items():
        zh.set_input_files(selector, files=[file])
    zh.click("input[name=issue]")
    zh.wait_for_selector(".messagelist")
    _shot(zh, "finance-invoice-issued")
    request = InvoiceRequest.objects.get(pk=request.pk)
    assert request.state == InvoiceState.ISSUED
    assert request.invoice_number == "26110000000000009101"


def reverse_issue(pk):
    from django.urls import reverse

    return reverse("admin:invoices_invoicerequest_issue", args=[pk])


def test_cs_opens_a_dispute_from_the_customer_page(zh, ready_user):
    """R-DIS-1: CS find the customer by the order number, open the dispute from the
    customer page (the paid top-up filled in) and the account is locked."""
    from accounts.models import Standing
    from disputes.models import Dispute, DisputeState
    from tests.disputes.conftest import third_party_bank_topup

    topup = third_party_bank_topup(ready_user, "50.00", _staff("Finance approver"))
    cs = _staff("CS agent")

    _admin_login(zh, cs)
    zh.fill("#customer-q", topup.out_trade_no)
    zh.click("form.customer-search input[type=submit]")
    zh.wait_for_selector("#customer")
    assert ready_user.email in zh.inner_text("#customer")
    _shot(zh, "cs-customer-page")
    zh.click(".customer-actions a[href*='/disputes/dispute/open/']")
    zh.wait_for_selector("#dispute-admin-form")
    assert zh.input_value("#id_topups") == topup.out_trade_no
    zh.fill("#id_amount", "50.00")
    zh.fill("#id_reported_by", "李四")
    zh.select_option("#id_reported_via", "phone")
    zh.fill("#id_rights_holder_name", "李四")
    zh.fill("#id_rights_holder_contact", "13800000000")
    _shot(zh, "cs-open-dispute-form")
    zh.click("#dispute-admin-form input[type=submit]")
    zh.wait_for_selector(".messagelist")
    _shot(zh, "cs-dispute-opened")
    dispute = Dispute.objects.get()
    assert dispute.state == DisputeState.OPEN
    assert re.search(rf"/disputes/dispute/{dispute.pk}/change/", zh.url)
    ready_user.balance_account.refresh_from_db()
    assert ready_user.balance_account.standing == Standing.LOCKED


@pytest.fixture
def ready_user(user):
    from tests.topups.conftest import accept, make_agreement, verify

    verify(user)
    accept(user, make_agreement())
    return user


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def queued(monkeypatch):
    """Alipay payout tasks queued on commit, recorded instead of sent to a broker."""
    from refunds import tasks

    sent = []
    monkeypatch.setattr(tasks.pay_out_alipay_line, "delay", lambda line_id: sent.append(line_id))
    return sent
