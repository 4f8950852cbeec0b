"""The user's invoice pages (R-INV-1, R-INV-3, R-INV-4, R-ADM-6): the invoiceable amount
by month, the form, history and downloads, another user's ids, Chinese."""

import pytest
from django.urls import reverse

from invoices.models import InvoiceRequest
from invoices.services.filing import submit_invoice
from invoices.services.issuing import issue_invoice
from tests.factories import UserFactory

from .conftest import COMPANY_ID, SAMPLE_BUYER, SAMPLE_PDF, funded, pdf, proof_file

pytestmark = pytest.mark.django_db
INDEX = reverse("invoices:index")


def chinese_user(user):
    """A user who chose Simplified Chinese (their browser says so too)."""
    user.language = "zh-hans"
    user.save(update_fields=["language"])


def test_page_shows_the_invoiceable_amount_by_month_r_inv_1(client, person, clerk):
    """R-INV-1: the page shows cash consumed by month and what can be invoiced now."""
    funded(person, clerk, "100.00", "60.00")
    client.force_login(person)
    page = client.get(INDEX)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="invoiceable"' in body and "60.00" in body
    assert len(page.context["figures"].months) == 1
    assert 'id="invoice-form"' in body and "Zhang San" in body


def test_user_files_a_personal_invoice_from_the_page_r_inv_3(client, person, clerk):
    """R-INV-3: the form files a personal invoice in the verified name and reserves it."""
    funded(person, clerk)
    client.force_login(person)
    response = client.post(INDEX, {"amount": "20.00", "kind": "ordinary", "title_type": "personal"})
    request = InvoiceRequest.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "invoices:detail", args=[request.pk]
    )
    assert (request.title, request.amount.amount) == ("Zhang San", 20)
    assert client.get(INDEX).context["figures"].invoiceable.amount == 40


def test_user_files_a_company_invoice_with_proof_from_the_page_r_inv_3(client, person, clerk):
    """R-INV-3: a company title with a valid taxpayer id and a proof file."""
    funded(person, clerk)
    client.force_login(person)
    response = client.post(
        INDEX,
        {
            "amount": "20.00",
            "kind": "ordinary",
            "title_type": "company",
            "title": SAMPLE_BUYER,
            "taxpayer_id": COMPANY_ID,
            "proofs": [proof_file()],
        },
    )
    assert response.status_code == 302
    assert InvoiceRequest.objects.get().proofs.count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "60.01"}, "At most 60.00 CNY can be invoiced now."),
        ({"amount": "0"}, "The amount must be greater than zero."),
        ({"amount": "-3"}, "The amount must be greater than zero."),
        ({"amount": "1.001"}, "At most 2 decimal places are allowed."),
        (
            {"amount": "5", "title_type": "company", "title": "X Ltd.", "taxpayer_id": "123"},
            "not a valid unified social credit code",
        ),
        (
            {"amount": "5", "title_type": "company", "title": "X Ltd.", "taxpayer_id": COMPANY_ID},
            "needs proof that you work for the company",
        ),
        ({"amount": "5", "kind": "special"}, "Select a valid choice"),
    ],
)
def test_bad_input_on_the_page_is_shown_and_changes_nothing(client, person, clerk, data, message):
    """R-INV-1, R-INV-3: bad input comes back as a 400 with the reason; nothing filed."""
    funded(person, clerk)
    client.force_login(person)
    response = client.post(INDEX, {"kind": "ordinary", "title_type": "personal", **data})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not InvoiceRequest.objects.exists()


def test_enterprise_form_shows_the_verified_company_read_only_r_inv_3(client, company, clerk):
    """R-INV-3: the enterprise form shows the verified name and credit code read-only; a
    tampered title in the POST is not used."""
    funded(company, clerk)
    client.force_login(company)
    body = client.get(INDEX).content.decode()
    assert SAMPLE_BUYER in body and COMPANY_ID in body and "readonly" in body
    client.post(
        INDEX,
        {"amount": "10.00", "kind": "ordinary", "title": "Other Ltd.", "taxpayer_id": "X"},
    )
    request = InvoiceRequest.objects.get()
    assert (request.title, request.taxpayer_id) == (SAMPLE_BUYER, COMPANY_ID)


def test_unverified_user_is_told_to_verify_first_r_inv_3(client, user):
    """R-INV-3: no form for an unverified account, a link to verification instead."""
    client.force_login(user)
    body = client.get(INDEX).content.decode()
    assert 'id="invoice-not-verified"' in body and 'id="invoice-form"' not in body


def test_history_and_downloads_for_the_owner_only_r_inv_4(client, person, clerk, finance):
    """R-INV-4: the owner downloads the issued file from the history and the detail page;
    another user's request or file id is a 404, as is a file of a request not issued."""
    funded(person, clerk)
    request = submit_invoice(person, amount="10.00")
    pending = submit_invoice(person, amount="10.00")
    issue_invoice(request, actor=finance, pdf=pdf(), invoice_number="26110000000000000401")
    item = request.files.get()
    client.force_login(person)
    body = client.get(INDEX).content.decode()
    download = reverse("invoices:download", args=[request.pk, item.pk])
    assert "26110000000000000401" in body and download in body
    detail = client.get(reverse("invoices:detail", args=[request.pk]))
    assert detail.status_code == 200 and download in detail.content.decode()
    response = client.get(download)
    assert response.status_code == 200 and response.content == SAMPLE_PDF
    assert "attachment" in response["Content-Disposition"]
    assert client.get(reverse("invoices:detail", args=[pending.pk])).status_code == 200
    assert client.get(reverse("invoices:download", args=[pending.pk, item.pk])).status_code == 404
    other = UserFactory(phone="")
    client.force_login(other)
    assert client.get(reverse("invoices:detail", args=[request.pk])).status_code == 404
    assert client.get(download).status_code == 404


def test_pages_need_a_login(client):
    """The invoice pages are for logged-in users."""
    assert client.get(INDEX).status_code == 302


def test_page_query_count_is_fixed(client, person, clerk, finance, django_assert_max_num_queries):
    """R-INV-1: the page is nine queries, with one request as with many."""
    funded(person, clerk, "100.00", "90.00")
    first = submit_invoice(person, amount="5.00")
    issue_invoice(first, actor=finance, pdf=pdf(), invoice_number="26110000000000000500")
    client.force_login(person)
    with django_assert_max_num_queries(9) as one:
        assert client.get(INDEX).status_code == 200
    for i in range(5):
        more = submit_invoice(person, amount="5.00")
        issue_invoice(more, actor=finance, pdf=pdf(), invoice_number=f"2611000000000000051{i}")
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert client.get(INDEX).status_code == 200


def test_the_invoice_page_speaks_chinese_r_adm_6(client, person, clerk):
    """R-ADM-6: the invoice page in zh-hans for a Chinese user, English otherwise."""
    funded(person, clerk)
    chinese_user(person)
    client.force_login(person)
    chinese = client.get(INDEX, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "当前可开票金额" in chinese and "What you can invoice now" not in chinese
    person.language = "en"
    person.save(update_fields=["language"])
    english = client.get(INDEX, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "What you can invoice now" in english


def test_service_refusals_reach_a_chinese_user_in_chinese_r_adm_6(client, person, clerk):
    """R-ADM-6: what the services refuse is shown in Chinese too."""
    funded(person, clerk)
    chinese_user(person)
    client.force_login(person)
    response = client.post(
        INDEX,
        {"amount": "60.01", "kind": "ordinary", "title_type": "personal"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400 and "可开票" in response.content.decode()
