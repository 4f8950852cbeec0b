"""The invoice desk in the admin (R-INV-2, R-INV-4, R-ADM-3): queue, issuing with the
XML check shown to finance, reject, reverse, files, the monthly CSV."""

import csv
import io

import pytest
from django.utils import timezone

from core.models import AuditRecord
from invoices.models import InvoiceState
from invoices.services.filing import submit_invoice
from invoices.services.issuing import issue_invoice
from tests.factories import StaffFactory, UserFactory, grant
from tests.topups.conftest import accept, verify

from .conftest import (
    COMPANY_ID,
    SAMPLE_BUYER,
    SAMPLE_PDF,
    funded,
    pdf,
    proof_file,
    xml_for,
)

pytestmark = pytest.mark.django_db
BASE = "/admin/invoices/invoicerequest/"


@pytest.fixture
def request_(person, clerk):
    funded(person, clerk)
    return submit_invoice(
        person,
        amount="50.00",
        title_type="company",
        title=SAMPLE_BUYER,
        taxpayer_id=COMPANY_ID,
        proofs=[proof_file()],
    )


def test_queue_by_state_with_the_consumption_covered_r_adm_3(client, request_, finance, person):
    """R-ADM-3, R-INV-1: the queue lists requests by state with the months they cover,
    finds them by email, and the change page shows the account's consumption."""
    client.force_login(finance)
    page = client.get(BASE, {"state__exact": "submitted"})
    assert page.status_code == 200 and page.context["cl"].result_count == 1
    body = page.content.decode()
    assert person.email in body and f"{timezone.localdate():%Y-%m}" in body
    assert client.get(BASE, {"q": person.email}).context["cl"].result_count == 1
    assert client.get(BASE, {"state__exact": "issued"}).context["cl"].result_count == 0
    change = client.get(f"{BASE}{request_.pk}/change/").content.decode()
    assert "invoiceable ¥10.00" in change and "Issue (upload" in change and "Reject" in change
    assert client.get(BASE + "add/").status_code == 403


def test_queue_query_count_is_fixed(
    client, person, clerk, finance, agreement, django_assert_max_num_queries
):
    """R-ADM-3: the queue is ten queries, for one request as for many."""
    funded(person, clerk, "100.00", "80.00")
    submit_invoice(person, amount="10.00")
    client.force_login(finance)
    with django_assert_max_num_queries(10) as one:
        assert client.get(BASE).status_code == 200
    for _ in range(6):
        other = UserFactory(phone="")
        verify(other)
        accept(other, agreement)
        funded(other, clerk, "20.00", "10.00")
        submit_invoice(other, amount="5.00")
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert client.get(BASE).status_code == 200


def test_staff_without_view_permission_get_403(client, request_):
    """R-ADM-1: staff without the invoices view permission get 403."""
    client.force_login(StaffFactory())
    assert client.get(BASE).status_code == 403
    assert client.get(f"{BASE}{request_.pk}/issue/").status_code == 403


def test_issue_page_shows_the_fields_read_and_refuses_a_mismatch_r_inv_4(client, request_, finance):
    """R-INV-4: finance sees what the portal read from the XML beside the request; a
    differing total is refused and nothing is issued."""
    client.force_login(finance)
    url = f"{BASE}{request_.pk}/issue/"
    assert client.get(url).status_code == 200
    check = client.post(url, {"xml": xml_for(request_, total="49.00"), "check": "1"})
    body = check.content.decode()
    assert check.status_code == 200 and "49.00" in body and "✗ differs" in body
    refused = client.post(url, {"xml": xml_for(request_, total="49.00"), "issue": "1"})
    assert refused.status_code == 400
    assert "does not match the request" in refused.content.decode()
    request_.refresh_from_db()
    assert request_.state == InvoiceState.SUBMITTED


def test_issue_page_issues_with_matching_files_r_inv_4(client, request_, finance, person):
    """R-INV-2, R-INV-4: with a matching XML and the PDF, the request is issued with the
    number read from the XML, and the file is downloadable by finance (audited)."""
    client.force_login(finance)
    url = f"{BASE}{request_.pk}/issue/"
    response = client.post(
        url,
        {
            "xml": xml_for(request_, number="26110000000000000321"),
            "pdf": pdf(),
            "issue": "1",
            "reason": "issued on the tax platform",
        },
    )
    assert response.status_code == 302
    request_.refresh_from_db()
    assert request_.state == InvoiceState.ISSUED
    assert request_.invoice_number == "26110000000000000321"
    item = request_.files.get(kind="pdf")
    download = client.get(f"{BASE}{request_.pk}/file/{item.pk}/")
    assert download.status_code == 200 and download.content == SAMPLE_PDF
    assert AuditRecord.objects.filter(action="view_file").count() == 1
    viewer = grant(StaffFactory(), "invoices.view_invoicerequest")
    client.force_login(viewer)
    assert client.get(f"{BASE}{request_.pk}/file/{item.pk}/").status_code == 403
    again = client.get(f"{BASE}{request_.pk}/issue/")
    assert again.status_code == 403


def test_issuing_twice_from_the_admin_is_refused_r_inv_2(client, request_, finance):
    """R-INV-2: the issue page of an issued request refuses and says why."""
    issue_invoice(request_, actor=finance, pdf=pdf(), invoice_number="26110000000000000322")
    client.force_login(finance)
    response = client.get(f"{BASE}{request_.pk}/issue/", follow=True)
    assert "Cannot issue" in response.content.decode()


def test_reject_and_reverse_buttons_r_inv_2(client, person, clerk, finance):
    """R-INV-2: reject (with the reason) and reverse (with a red-letter reason) run through
    the transition forms; reversing a request that was not issued is refused."""
    funded(person, clerk)
    first = submit_invoice(person, amount="10.00")
    second = submit_invoice(person, amount="10.00")
    client.force_login(finance)
    client.post(f"{BASE}{first.pk}/transition/reject/", {"reason": "wrong title"})
    first.refresh_from_db()
    assert first.state == InvoiceState.REJECTED and first.decision_reason == "wrong title"
    response = client.post(
        f"{BASE}{second.pk}/transition/reverse/",
        {"reason": "x", "red_letter_reason": "issuing_error"},
        follow=True,
    )
    second.refresh_from_db()
    assert second.state == InvoiceState.SUBMITTED
    issue_invoice(second, actor=finance, pdf=pdf(), invoice_number="26110000000000000323")
    client.post(
        f"{BASE}{second.pk}/transition/reverse/",
        {"reason": "service ended", "red_letter_reason": "service_terminated"},
    )
    second.refresh_from_db()
    assert second.state == InvoiceState.REVERSED
    assert second.red_letter_reason == "service_terminated"
    assert response.status_code == 200


def test_proof_viewable_only_with_the_permission(client, request_, finance):
    """R-INV-3: title proofs open only for staff with invoices.view_invoice_proof."""
    proof = request_.proofs.get()
    url = f"{BASE}{request_.pk}/proof/{proof.pk}/"
    client.force_login(grant(StaffFactory(), "invoices.view_invoicerequest"))
    assert client.get(url).status_code == 403
    client.force_login(finance)
    assert client.get(url).content.startswith(b"%PDF")


def test_monthly_csv_invoiced_vs_consumed_vs_invoiceable_r_adm_3(client, person, clerk, finance):
    """R-ADM-3, R-INV-1: the month's CSV per account: consumed, invoiced, invoiceable."""
    funded(person, clerk, "100.00", "60.00")
    request = submit_invoice(person, amount="25.00")
    issue_invoice(request, actor=finance, pdf=pdf(), invoice_number="26110000000000000324")
    client.force_login(finance)
    assert client.get(f"{BASE}report/").status_code == 200
    assert client.get(f"{BASE}report/", {"month": "2026-13"}).status_code == 400
    month = f"{timezone.localdate():%Y-%m}"
    response = client.get(f"{BASE}report/", {"month": month})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][3:] == [
        "cash consumed in month (CNY)",
        "invoiced in month (CNY)",
        "reversed in month (CNY)",
        "consumed to month end (CNY)",
        "invoiced to month end (CNY)",
        "invoiceable at month end (CNY)",
    ]
    (row,) = [r for r in rows[1:] if r[2] == person.email]
    assert row[3:] == ["60.00", "25.00", "0.00", "60.00", "25.00", "35.00"]
