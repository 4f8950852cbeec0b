"""The demo data shows an invoice request waiting for finance (R-INV-2)."""

import pytest
from django.core.management import call_command

from invoices.models import InvoiceRequest, InvoiceState

pytestmark = pytest.mark.django_db


def test_seed_demo_files_one_invoice_request(tmp_path, settings):
    """R-INV-1, R-INV-2: the demo loads (twice, idempotently) one personal invoice request
    of 25.00 for the demo user, from cash consumed, waiting to be issued."""
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("seed_demo")
    call_command("seed_demo")
    (request,) = InvoiceRequest.objects.filter(account__user__email="user@demo.local")
    assert request.state == InvoiceState.SUBMITTED
    assert request.amount_micro == 25_000_000 and request.title_type == "personal"
