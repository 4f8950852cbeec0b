"""The demo data shows a refund under review, filed by CS for the demo user (R-REF-1)."""

import pytest
from django.core.management import call_command

from refunds.models import RefundRequest, RefundState

pytestmark = pytest.mark.django_db


def test_seed_demo_files_one_refund_under_review():
    """R-REF-1: the demo loads (twice, idempotently) one refund filed by CS for the demo
    user, asked by email, with a proof file, under review."""
    call_command("seed_demo")
    call_command("seed_demo")
    (request,) = RefundRequest.objects.filter(account__user__email="user@demo.local")
    assert request.state == RefundState.UNDER_REVIEW
    assert request.asked_via == "email" and request.filed_by.email == "cs@demo.local"
    assert request.held_micro + request.arrears_micro == 30_000_000
    assert request.proofs.count() == 1
