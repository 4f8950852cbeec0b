"""The one store for case files (accounts.proof_files): refund proofs, dispute evidence
and debt proofs, invoice title proofs and invoice files are checked, written and read
the same way (R-ACC-5, R-REF-1, R-DIS-2, R-INV-3, R-INV-4)."""

import io
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts import proof_files

PDF = b"%PDF-1.4\n% proof\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _ofd():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("OFD.xml", "<ofd:OFD/>")
    return buffer.getvalue()


def upload(name, data):
    return SimpleUploadedFile(name, data)


def _code(call):
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.code


@pytest.mark.parametrize(
    "name, data, code",
    [
        ("proof.pdf", b"MZ\x90\x00 not a pdf", "file_type"),  # content is not a document
        ("proof.png", PDF, "file_type"),  # the name claims another kind
        ("proof", PDF, "file_type"),  # a document is named as what it is
        ("proof.pdf", _ofd(), "file_type"),  # an invoice file is no proof
        ("proof.pdf", b"", "file_empty"),
    ],
)
def test_documents_are_refused_by_content_and_name(name, data, code):
    """Proofs and evidence are PDF, JPEG or PNG by their first bytes, named as such."""
    assert _code(lambda: proof_files.check_document(upload(name, data))) == code


def test_the_size_limit_is_one_rule_for_every_kind(settings):
    """UPLOAD_MAX_BYTES refuses a document and an invoice file alike, with one message."""
    settings.UPLOAD_MAX_BYTES = 10
    big = PDF + b"x" * 20
    with pytest.raises(ValidationError) as document:
        proof_files.check_document(upload("proof.pdf", big))
    with pytest.raises(ValidationError) as invoice:
        proof_files.check_invoice_file(upload("invoice.pdf", big), "pdf")
    assert document.value.code == invoice.value.code == "file_too_large"
    assert document.value.messages == invoice.value.messages


@pytest.mark.parametrize(
    "name, data, kind, ok",
    [
        ("invoice.pdf", PDF, "pdf", True),
        ("invoice", PDF, "pdf", True),  # no extension: the content decides
        ("invoice.ofd", _ofd(), "ofd", True),
        ("invoice.xml", b"\xef\xbb\xbf<Invoice/>", "xml", True),
        ("invoice.xml", PDF, "pdf", False),  # the name claims another kind
        ("invoice.ofd", b"PK\x03\x04 broken", "ofd", False),
        ("invoice.png", PNG, "png", False),  # not an invoice kind
    ],
)
def test_invoice_files_are_the_kind_they_are_given_as(name, data, kind, ok):
    if ok:
        assert proof_files.check_invoice_file(upload(name, data), kind).kind == kind
    else:
        assert _code(lambda: proof_files.check_invoice_file(upload(name, data), kind)) == (
            "file_type"
        )


@pytest.mark.django_db
def test_every_app_stores_encrypted_under_a_random_name(settings, tmp_path, user):
    """Each app's file rows use the store: written encrypted, named at random in the
    app's folder (never the user's file name), read back as sent."""
    from disputes.models import DisputeFile
    from invoices.models import InvoiceFile, InvoiceProof
    from refunds.models import RefundProof

    settings.MEDIA_ROOT = tmp_path

    for model in (RefundProof, DisputeFile, InvoiceProof, InvoiceFile):
        assert model._meta.get_field("file").storage is proof_files.storage
    checked = proof_files.check_document(upload("Zhang San ID card.pdf", PDF))
    assert checked.content_type == "application/pdf"
    proof = RefundProof(content_type=checked.content_type)
    proof_files.save(proof.file, checked, stem="proof")
    assert proof.file.name.startswith("refund-proofs/") and proof.file.name.endswith(".pdf.enc")
    assert "Zhang" not in proof.file.name
    on_disk = (tmp_path / "private" / proof.file.name).read_bytes()
    assert PDF not in on_disk
    assert proof_files.read(proof.file) == PDF
    assert proof_files.extension(proof.content_type) == "pdf"
    assert proof_files.extension("text/html") == "bin"
