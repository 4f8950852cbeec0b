"""Fixtures for invoice tests: verified individuals and enterprises with paid top-ups and
consumption made through the services, finance staff, the project's sample files."""

import itertools
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.identity import make_credit_code
from tests.factories import StaffFactory, UserFactory, grant
from tests.refunds.conftest import bank_topup, consume, trial_for  # noqa: F401
from tests.topups.conftest import PDF, accept, make_agreement, verify

SAMPLES = Path(__file__).resolve().parents[2] / "invoices" / "samples"
SAMPLE_XML = (SAMPLES / "invoice-sample.xml").read_text(encoding="utf-8")
SAMPLE_PDF = (SAMPLES / "invoice-sample.pdf").read_bytes()
SAMPLE_OFD = (SAMPLES / "invoice-sample.ofd").read_bytes()
SAMPLE_NUMBER = "26110000000000000001"
SAMPLE_BUYER = "示例买方科技有限公司"
SAMPLE_BUYER_ID = "91110108MA01TEXT0T"
COMPANY_ID = make_credit_code("91110108MA01TEXT0")  # passes GB 32100

_seq = itertools.count(1)

FINANCE_PERMS = (
    "invoices.view_invoicerequest",
    "invoices.issue_invoicerequest",
    "invoices.reject_invoicerequest",
    "invoices.reverse_invoicerequest",
    "invoices.view_invoice_file",
    "invoices.view_invoice_proof",
)


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def agreement(db):
    return make_agreement()


@pytest.fixture
def person(user, agreement):
    """An individually verified user (name Zhang San) who may top up."""
    verify(user, legal_name="Zhang San")
    accept(user, agreement)
    return user


@pytest.fixture
def company(db, agreement):
    """An enterprise account verified as 示例买方科技有限公司 with credit code COMPANY_ID."""
    owner = UserFactory(phone="")
    verify(owner, kind="enterprise", company_name=SAMPLE_BUYER, credit_code=COMPANY_ID)
    accept(owner, agreement)
    return owner


@pytest.fixture
def clerk(db):
    return grant(StaffFactory(), "topups.confirm_remittance", "topups.view_topup")


@pytest.fixture
def finance(db):
    return grant(StaffFactory(), *FINANCE_PERMS)


def funded(user, clerk, paid="100.00", used="60.00"):
    """A paid bank top-up of `paid` and `used` of it consumed by API calls."""
    bank_topup(user, paid, clerk)
    if used:
        consume(user.balance_account, used)
    return user


def proof_file(name="badge.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def invoice_xml(
    *, number=SAMPLE_NUMBER, buyer=SAMPLE_BUYER, buyer_id=SAMPLE_BUYER_ID, total="100.00"
) -> bytes:
    """The sample XML with the fields a test wants."""
    text = (
        SAMPLE_XML.replace(SAMPLE_NUMBER, number)
        .replace(SAMPLE_BUYER, buyer)
        .replace(
            f"<BuyerIdNum>{SAMPLE_BUYER_ID}</BuyerIdNum>", f"<BuyerIdNum>{buyer_id}</BuyerIdNum>"
        )
        .replace("<TotalTax-includedAmount>100.00<", f"<TotalTax-includedAmount>{total}<")
    )
    return text.encode("utf-8")


def upload(name, data, content_type="application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def xml_for(request, **overrides) -> SimpleUploadedFile:
    """A matching invoice XML for `request` (override a field to make it differ)."""
    values = {
        "number": overrides.pop("number", f"2611{next(_seq):016d}"),
        "buyer": request.title,
        "buyer_id": request.taxpayer_id,
        "total": f"{request.amount.amount:.2f}",
    }
    values.update(overrides)
    return upload("invoice.xml", invoice_xml(**values), "application/xml")


def pdf():
    return upload("invoice.pdf", SAMPLE_PDF, "application/pdf")


def ofd():
    return upload("invoice.ofd", SAMPLE_OFD)
