"""Issuing, rejecting and reversing invoice requests (R-INV-2, R-INV-4): the workflow,
the tax platform's files checked by content, the XML checked against the request,
notices, and who may download the files."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from core.models import AuditRecord
from core.workflow import WorkflowError, perform_transition
from invoices.files import parse_invoice_xml
from invoices.models import InvoiceFile, InvoiceState
from invoices.selectors import invoiceable_for
from invoices.services.filing import submit_invoice
from invoices.services.issuing import (
    issue_invoice,
    read_invoice_file,
    reject_invoice,
    reverse_invoice,
)
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory, grant

from .conftest import (
    COMPANY_ID,
    SAMPLE_BUYER,
    SAMPLE_PDF,
    SAMPLE_XML,
    funded,
    invoice_xml,
    ofd,
    pdf,
    proof_file,
    upload,
    xml_for,
)


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


def unchanged(request, state=InvoiceState.SUBMITTED):
    request.refresh_from_db()
    assert request.state == state
    if state == InvoiceState.SUBMITTED:
        assert request.invoice_number == "" and not request.files.exists()


def test_the_sample_xml_reads_as_the_tax_platform_writes_it_r_inv_4():
    """R-INV-4: the project's sample XML gives number, buyer, taxpayer id, total, date."""
    fields = parse_invoice_xml(SAMPLE_XML.encode())
    assert fields == {
        "invoice_number": "26110000000000000001",
        "buyer_name": SAMPLE_BUYER,
        "buyer_taxpayer_id": "91110108MA01TEXT0T",
        "total": "100.00",
        "issue_date": "2026-11-30 10:00:00",
    }


@pytest.mark.django_db
def test_issue_with_matching_xml_pdf_and_ofd_r_inv_2_r_inv_4(request_, finance, person):
    """R-INV-2, R-INV-4: issuing with a matching XML records the number and date read from
    it, keeps the files encrypted, audits it and tells the user with the download link."""
    xml = xml_for(request_, number="26119999000000000042")
    issued = issue_invoice(request_, actor=finance, pdf=pdf(), ofd=ofd(), xml=xml)
    assert issued.state == InvoiceState.ISSUED
    assert issued.invoice_number == "26119999000000000042"
    assert str(issued.issued_on) == "2026-11-30" and issued.issuer == finance
    assert issued.xml_fields["buyer_name"] == SAMPLE_BUYER
    assert sorted(issued.files.values_list("kind", flat=True)) == ["ofd", "pdf", "xml"]
    item = issued.files.get(kind="pdf")
    with open(item.file.path, "rb") as fh:
        assert not fh.read().startswith(b"%PDF")  # encrypted at rest
    assert read_invoice_file(item, actor=person)[0] == SAMPLE_PDF
    audit = AuditRecord.objects.get(action="issue", object_id=str(issued.pk))
    assert (audit.from_state, audit.to_state, audit.actor) == ("submitted", "issued", finance)
    notice = Notice.objects.get(user=person, kind="invoice_issued")
    assert "26119999000000000042" in notice.subject
    assert reverse("invoices:detail", args=[issued.pk]) in notice.body


@pytest.mark.django_db
def test_issue_with_pdf_only_needs_a_20_digit_number_r_inv_4(request_, finance):
    """R-INV-4: without XML the number typed by finance is recorded; it has 20 digits."""
    for bad in ("", "1234567890", "2611000000000000000X", "261100000000000000012"):
        with pytest.raises(ValidationError) as exc:
            issue_invoice(request_, actor=finance, pdf=pdf(), invoice_number=bad)
        assert exc.value.code == "invoice_number"
        unchanged(request_)
    issued = issue_invoice(
        request_, actor=finance, pdf=pdf(), invoice_number="26110000000000000777"
    )
    assert issued.invoice_number == "26110000000000000777"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "override",
    [
        {"buyer": "示例另一家有限公司"},
        {"buyer_id": "91110108MA01ABCD1E"},
        {"total": "50.01"},
        {"total": "5O.00"},
        {"number": "2611000000000000001"},
        {"number": "ABCDEFGHIJ0000000001"},
    ],
)
def test_xml_that_differs_from_the_request_is_refused_r_inv_4(request_, finance, override):
    """R-INV-4: an XML whose number, buyer name, buyer taxpayer id or total differs from
    the request: issuing is refused, nothing is stored."""
    with pytest.raises(ValidationError) as exc:
        issue_invoice(request_, actor=finance, pdf=pdf(), xml=xml_for(request_, **override))
    assert exc.value.code == "xml_mismatch"
    unchanged(request_)
    assert not InvoiceFile.objects.exists()


@pytest.mark.django_db
def test_xml_number_must_equal_the_number_typed_r_inv_4(request_, finance):
    """R-INV-4: when finance also types the number, the XML's must be the same."""
    with pytest.raises(ValidationError) as exc:
        issue_invoice(
            request_,
            actor=finance,
            xml=xml_for(request_, number="26110000000000000001"),
            invoice_number="26110000000000000002",
        )
    assert exc.value.code == "xml_mismatch"
    unchanged(request_)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "name", "data", "code"),
    [
        ("pdf", "invoice.pdf", b"<xml>not a pdf</xml>", "file_type"),
        ("pdf", "invoice.pdf", b"PK\x03\x04 not a pdf", "file_type"),
        ("ofd", "invoice.ofd", SAMPLE_PDF, "file_type"),
        ("ofd", "invoice.ofd", b"PK\x03\x04broken zip", "file_type"),
        ("xml", "invoice.xml", SAMPLE_PDF, "file_type"),
        ("pdf", "invoice.xml", SAMPLE_PDF, "file_type"),
        ("xml", "invoice.xml", b"<EInvoice><unclosed></EInvoice>", "xml_invalid"),
        ("pdf", "invoice.pdf", b"", "file_empty"),
    ],
)
def test_file_that_is_not_what_its_name_says_is_refused_r_inv_4(
    request_, finance, field, name, data, code
):
    """R-INV-4: files are checked by content: a PDF starts %PDF-, an OFD is a zip with
    OFD.xml, an XML parses; a name claiming another kind is refused too."""
    with pytest.raises(ValidationError) as exc:
        issue_invoice(
            request_,
            actor=finance,
            invoice_number="26110000000000000001",
            **{field: upload(name, data)},
        )
    assert exc.value.code == code
    unchanged(request_)


@pytest.mark.django_db
def test_xml_with_a_doctype_or_entities_is_refused_r_inv_4(request_, finance):
    """R-INV-4: entity expansion (billion laughs) and external entities are refused
    before anything is parsed."""
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<EInvoice><BuyerName>&lol2;</BuyerName></EInvoice>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        b"<EInvoice><BuyerName>&ext;</BuyerName></EInvoice>"
    )
    for data in (bomb, external):
        with pytest.raises(ValidationError) as exc:
            issue_invoice(request_, actor=finance, xml=upload("invoice.xml", data))
        assert exc.value.code == "xml_doctype"
    unchanged(request_)


@pytest.mark.django_db
def test_oversized_invoice_file_is_refused_r_inv_4(request_, finance, settings):
    """R-INV-4: an invoice file over settings.UPLOAD_MAX_BYTES is refused."""
    settings.UPLOAD_MAX_BYTES = 100
    with pytest.raises(ValidationError) as exc:
        issue_invoice(
            request_,
            actor=finance,
            invoice_number="26110000000000000001",
            pdf=upload("invoice.pdf", b"%PDF-" + b"0" * 200),
        )
    assert exc.value.code == "file_too_large"
    unchanged(request_)


@pytest.mark.django_db
def test_no_file_is_refused_r_inv_4(request_, finance):
    """R-INV-4: issuing records the tax platform's file: none, no issue."""
    with pytest.raises(ValidationError) as exc:
        issue_invoice(request_, actor=finance, invoice_number="26110000000000000001")
    assert exc.value.code == "file_required"
    unchanged(request_)


@pytest.mark.django_db
def test_issuing_twice_is_refused_r_inv_2(request_, finance):
    """R-INV-2: an issued request cannot be issued again (wrong state); nothing added."""
    issue_invoice(request_, actor=finance, xml=xml_for(request_, number="26110000000000000011"))
    with pytest.raises(WorkflowError) as exc:
        issue_invoice(request_, actor=finance, xml=xml_for(request_, number="26110000000000000012"))
    assert exc.value.code == "wrong_state"
    request_.refresh_from_db()
    assert request_.invoice_number == "26110000000000000011" and request_.files.count() == 1


@pytest.mark.django_db
def test_one_invoice_number_is_recorded_once_r_inv_4(person, clerk, finance):
    """R-INV-4: the same invoice number on a second request is refused."""
    funded(person, clerk)
    first = submit_invoice(person, amount="10.00")
    second = submit_invoice(person, amount="10.00")
    issue_invoice(first, actor=finance, pdf=pdf(), invoice_number="26110000000000000099")
    with pytest.raises(ValidationError) as exc:
        issue_invoice(second, actor=finance, pdf=pdf(), invoice_number="26110000000000000099")
    assert exc.value.code == "number_taken"
    unchanged(second)


@pytest.mark.django_db
def test_issuing_needs_the_permission_r_inv_2(request_):
    """R-INV-2, R-ADM-1: staff without invoices.issue_invoicerequest cannot issue."""
    clerk = grant(StaffFactory(), "invoices.view_invoicerequest")
    with pytest.raises(PermissionDenied):
        issue_invoice(request_, actor=clerk, pdf=pdf(), invoice_number="26110000000000000001")
    unchanged(request_)


@pytest.mark.django_db
def test_reject_sends_the_reason_and_releases_the_amount_r_inv_2(request_, finance, person):
    """R-INV-2: submitted → rejected with a reason the user is told; the amount is
    invoiceable again."""
    assert invoiceable_for(person.balance_account).invoiceable.amount == Decimal("10.00")
    perform_transition(request_, "reject", actor=finance, reason="The title is misspelt")
    request_.refresh_from_db()
    assert request_.state == InvoiceState.REJECTED
    assert request_.decision_reason == "The title is misspelt"
    assert invoiceable_for(person.balance_account).invoiceable.amount == Decimal("60.00")
    notice = Notice.objects.get(user=person, kind="invoice_rejected")
    assert "The title is misspelt" in notice.body


@pytest.mark.django_db
def test_reject_without_reason_or_after_issuing_is_refused_r_inv_2(request_, finance):
    """R-INV-2: a rejection needs a reason; an issued request cannot be rejected."""
    with pytest.raises(ValidationError):
        reject_invoice(request_, actor=finance, reason="  ")
    unchanged(request_)
    issue_invoice(request_, actor=finance, pdf=pdf(), invoice_number="26110000000000000003")
    with pytest.raises(WorkflowError) as exc:
        reject_invoice(request_, actor=finance, reason="too late")
    assert exc.value.code == "wrong_state"
    unchanged(request_, InvoiceState.ISSUED)


@pytest.mark.django_db
def test_red_letter_reversal_makes_the_amount_invoiceable_again_r_inv_2(request_, finance, person):
    """R-INV-2: issued → reversed (red-letter) with one of the red-letter reasons; the
    amount is invoiceable again and the user is told."""
    issue_invoice(request_, actor=finance, pdf=pdf(), invoice_number="26110000000000000004")
    reverse_invoice(
        request_,
        actor=finance,
        reason="buyer asked for another title",
        red_letter_reason="issuing_error",
        red_letter_number="26110000000000000005",
    )
    request_.refresh_from_db()
    assert request_.state == InvoiceState.REVERSED
    assert request_.red_letter_reason == "issuing_error"
    assert invoiceable_for(person.balance_account).invoiceable.amount == Decimal("60.00")
    assert Notice.objects.filter(user=person, kind="invoice_reversed").exists()


@pytest.mark.django_db
def test_reversing_what_was_not_issued_is_refused_r_inv_2(request_, finance):
    """R-INV-2: only an issued invoice is reversed; a red-letter reason is required."""
    with pytest.raises(WorkflowError) as exc:
        reverse_invoice(request_, actor=finance, reason="x", red_letter_reason="issuing_error")
    assert exc.value.code == "wrong_state"
    unchanged(request_)
    issue_invoice(request_, actor=finance, pdf=pdf(), invoice_number="26110000000000000006")
    with pytest.raises(ValidationError) as exc:
        reverse_invoice(request_, actor=finance, reason="x", red_letter_reason="because")
    assert exc.value.code == "red_letter_reason"
    unchanged(request_, InvoiceState.ISSUED)


@pytest.mark.django_db
def test_invoice_files_only_for_the_owner_and_staff_with_permission_r_inv_4(
    request_, finance, person
):
    """R-INV-4: files are served to their owner and to staff holding
    invoices.view_invoice_file (audited); another user or staff without it are refused."""
    issue_invoice(request_, actor=finance, pdf=pdf(), invoice_number="26110000000000000007")
    item = request_.files.get()
    assert read_invoice_file(item, actor=person)[0] == SAMPLE_PDF
    assert read_invoice_file(item, actor=finance)[0] == SAMPLE_PDF
    assert AuditRecord.objects.filter(action="view_file", object_id=str(request_.pk)).count() == 1
    for outsider in (UserFactory(phone=""), grant(StaffFactory(), "invoices.view_invoicerequest")):
        with pytest.raises(PermissionDenied):
            read_invoice_file(item, actor=outsider)


@pytest.mark.django_db
def test_the_same_xml_bytes_give_the_same_fields_with_namespaces():
    """R-INV-4: namespaced XML reads the same (element names, namespaces ignored)."""
    data = invoice_xml().replace(b"<EInvoice>", b'<EInvoice xmlns="urn:example:einvoice">')
    assert parse_invoice_xml(data)["invoice_number"] == "26110000000000000001"


@pytest.mark.django_db
def test_the_issued_notice_carries_the_invoice_files_r_inv_4(request_, finance, person):
    """R-INV-4: the files an `invoice_issued` email is to carry: the owner's issued
    invoice, PDF first (notices attach them once they take attachments)."""
    from invoices.services.issuing import notice_attachments

    xml = xml_for(request_, number="26110000000000000600")
    issue_invoice(request_, actor=finance, xml=xml, pdf=pdf())
    notice = Notice.objects.get(user=person, kind="invoice_issued")
    files = notice_attachments(notice)
    assert [(name, ctype) for name, _data, ctype in files] == [
        ("invoice-26110000000000000600.pdf", "application/pdf"),
        ("invoice-26110000000000000600.xml", "application/xml"),
    ]
    assert files[0][1] == SAMPLE_PDF
    notice.user_id = UserFactory(phone="").pk  # another user's notice carries nothing
    assert notice_attachments(notice) == []


@pytest.mark.django_db
def test_staff_never_decide_their_own_request_r_adm_4(clerk, agreement):
    """R-ADM-4: a finance approver who is also a user cannot issue, reject or reverse
    their own invoice request."""
    from tests.topups.conftest import accept, verify

    from .conftest import FINANCE_PERMS

    staff = grant(StaffFactory(phone=""), *FINANCE_PERMS)
    verify(staff)
    accept(staff, agreement)
    funded(staff, clerk)
    own = submit_invoice(staff, amount="10.00")
    with pytest.raises(PermissionDenied):
        issue_invoice(own, actor=staff, pdf=pdf(), invoice_number="26110000000000000700")
    with pytest.raises(PermissionDenied):
        reject_invoice(own, actor=staff, reason="mine")
    unchanged(own)


@pytest.mark.django_db
def test_the_issued_invoice_is_emailed_with_its_files_r_inv_4(
    request_, finance, person, recording_email
):
    """R-INV-4: the `invoice_issued` email carries the electronic invoice (PDF and XML)."""
    from django.utils import timezone

    from notices.services import deliver_due_notices

    xml = xml_for(request_, number="26110000000000000700")
    issue_invoice(request_, actor=finance, xml=xml, pdf=pdf())
    deliver_due_notices(timezone.now() + timezone.timedelta(minutes=1), 100)
    mails = [m for m in recording_email.sent if m.to == [person.email]]
    issued = [m for m in mails if "26110000000000000700" in str(m.attachments)]
    assert issued, [m.subject for m in mails]
    names = [name for name, _data, _ctype in issued[0].attachments]
    assert names == ["invoice-26110000000000000700.pdf", "invoice-26110000000000000700.xml"]
    assert issued[0].attachments[0][1] == SAMPLE_PDF
