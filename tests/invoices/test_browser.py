"""The invoice flow end to end in the browser (R-INV-1 … R-INV-4)."""

import pytest

from invoices.models import InvoiceRequest
from tests.factories import PASSWORD, StaffFactory, grant
from tests.topups.conftest import PDF

from .conftest import (
    COMPANY_ID,
    FINANCE_PERMS,
    SAMPLE_BUYER,
    SAMPLE_PDF,
    funded,
    invoice_xml,
)


def _login(page, email):
    page.context.clear_cookies()
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


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_user_asks_for_a_company_invoice_finance_issues_user_downloads(page, person, clerk):
    """R-INV-1, R-INV-3, R-INV-4: the user sees what can be invoiced, asks for a company
    invoice with a proof; finance checks the XML (the fields read are shown), issues with
    the PDF; the user sees it issued and downloads the PDF."""
    funded(person, clerk, "100.00", "60.00")
    finance = grant(StaffFactory(), *FINANCE_PERMS, "core.view_auditrecord")

    _login(page, person.email)
    page.goto("/invoices/")
    assert page.inner_text("#invoiceable").lstrip("¥") == "60.00"
    page.fill("#id_amount", "60.00")
    page.select_option("#id_title_type", "company")
    page.fill("#id_title", SAMPLE_BUYER)
    page.fill("#id_taxpayer_id", COMPANY_ID)
    page.set_input_files(
        "#id_proofs", files=[{"name": "badge.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.click("#invoice-form button[type=submit]")
    page.wait_for_selector("#invoice-state")
    assert page.inner_text("#invoice-state") == "Submitted"
    request = InvoiceRequest.objects.get()
    assert (request.title, request.taxpayer_id) == (SAMPLE_BUYER, COMPANY_ID)

    xml = invoice_xml(number="26110000000000009001", buyer_id=COMPANY_ID, total="60.00")
    files = {
        "#id_xml": {"name": "invoice.xml", "mimeType": "application/xml", "buffer": xml},
        "#id_pdf": {"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": SAMPLE_PDF},
    }
    _admin_login(page, finance.email)
    page.goto(f"/admin/invoices/invoicerequest/{request.pk}/change/")
    page.click("text=Issue (upload the tax platform's files)")
    for selector, file in files.items():
        page.set_input_files(selector, files=[file])
    page.click("input[name=check]")
    page.wait_for_selector("#xml-check")
    assert page.locator("#xml-check tr.mismatch").count() == 0
    assert page.locator("#xml-check tr.match").count() == 4
    assert request.__class__.objects.get().state == "submitted"
    for selector, file in files.items():
        page.set_input_files(selector, files=[file])
    page.click("input[name=issue]")
    page.wait_for_selector(".messagelist")
    request.refresh_from_db()
    assert request.state == "issued" and request.invoice_number == "26110000000000009001"

    _login(page, person.email)
    page.goto(f"/invoices/{request.pk}/")
    assert page.inner_text("#invoice-state") == "Issued"
    assert page.inner_text("#invoice-number") == "26110000000000009001"
    with page.expect_download() as info:
        page.click("#invoice-files a:has-text('PDF')")
    with open(info.value.path(), "rb") as fh:
        assert fh.read() == SAMPLE_PDF
    page.goto("/invoices/")
    assert page.inner_text("#invoiceable").lstrip("¥") == "0.00"
