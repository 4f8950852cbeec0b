from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts import services
from accounts.identity import make_credit_code, make_resident_id
from accounts.models import VerificationKind
from tests.factories import StaffFactory, grant

PDF = b"%PDF-1.4\n% test licence\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    """Encrypted documents go to a throwaway folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


def pdf_upload(name="licence.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


_seq = iter(range(100, 1000))


def submit_individual(user, *, birth=date(1990, 5, 17), id_number=None, name="Li Ming"):
    return services.submit_verification(
        user,
        kind=VerificationKind.INDIVIDUAL,
        legal_name=name,
        id_number=id_number or make_resident_id(birth, sequence=next(_seq)),
        phone="13800000000",
    )


def submit_enterprise(user, *, code=None, licence=None):
    return services.submit_verification(
        user,
        kind=VerificationKind.ENTERPRISE,
        company_name="Acme Models Ltd.",
        credit_code=code or make_credit_code("91110108MA01ABCD1"),
        legal_representative="Zhao Lei",
        phone="01050000000",
        licence_file=licence or pdf_upload(),
    )


@pytest.fixture
def cs_agent():
    return grant(
        StaffFactory(),
        "accounts.view_verification",
        "accounts.review_verification",
        "accounts.record_capacity_exception",
        "core.view_auditrecord",
    )


@pytest.fixture
def risk_officer():
    return grant(
        StaffFactory(),
        "accounts.view_verification",
        "accounts.view_identity_document",
        "accounts.revoke_verification",
        "accounts.view_apikey",
        "accounts.lock_apikey",
        "accounts.view_agreementversion",
        "accounts.add_agreementversion",
        "accounts.change_agreementversion",
        "accounts.publish_agreementversion",
        "core.view_auditrecord",
    )
