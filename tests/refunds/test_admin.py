"""The refund desk in the admin (R-REF-1, R-ACC-5): queue, preview, proofs, buttons, CSV."""

import datetime
from decimal import Decimal

import pytest

from core.models import AuditRecord
from refunds.models import RefundProof, RefundState
from refunds.services.decisions import approve_refund, take_for_review
from refunds.services.filing import submit_refund
from refunds.services.payouts import record_transfer, start_payout
from tests.factories import StaffFactory, grant
from tests.topups.conftest import PDF

from .conftest import bank_topup, money, proof

pytestmark = pytest.mark.django_db
BASE = "/admin/refunds/refundrequest/"


def test_queue_search_and_preview(client, ready_user, clerk, cs):
    """R-REF-1: the queue lists requests by state and age, finds them by the user's email and the
    top-up's order number, and the change page shows the preview."""
    topup = bank_topup(ready_user, "30.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    client.force_login(cs)
    page = client.get(BASE)
    assert page.status_code == 200 and ready_user.email in page.content.decode()
    assert client.get(BASE, {"q": ready_user.email}).context["cl"].result_count == 1
    assert client.get(BASE, {"q": topup.out_trade_no}).context["cl"].result_count == 1
    assert client.get(BASE, {"q": "nobody@example.com"}).context["cl"].result_count == 0
    assert client.get(BASE, {"state__exact": "submitted"}).context["cl"].result_count == 1
    change = client.get(f"{BASE}{request.pk}/change/").content.decode()
    assert "refundable" in change and "Take for review" in change
    assert client.get(BASE + "add/").status_code == 403


def test_staff_without_view_permission_get_403(client, ready_user, clerk):
    """R-ADM-1/R-REF-1: staff without the refunds view permission get 403."""
    bank_topup(ready_user, "30.00", clerk)
    submit_refund(ready_user, proofs=[proof()])
    client.force_login(StaffFactory())
    assert client.get(BASE).status_code == 403


def test_proof_is_encrypted_and_viewable_only_with_the_permission(client, ready_user, clerk, cs):
    """R-ACC-5: proof files are encrypted at rest; opening one needs the proof permission
    and every view is audited."""
    bank_topup(ready_user, "30.00", clerk)
    request = submit_refund(ready_user, proofs=[proof(), proof("scan.pdf")])
    first = RefundProof.objects.filter(request=request).first()
    with first.file.storage.open(first.file.name, "rb") as fh:
        assert not fh.read().startswith(b"%PDF")
    url = f"{BASE}{request.pk}/proof/{first.pk}/"
    viewer = grant(StaffFactory(), "refunds.view_refundrequest")
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    client.force_login(cs)
    response = client.get(url)
    assert response.status_code == 200 and response.content == PDF
    assert (
        AuditRecord.objects.filter(object_id=str(request.pk), action="view_proof", actor=cs).count()
        == 1
    )
    assert RefundProof.objects.filter(request=request).count() == 2


def test_buttons_run_the_services_and_four_eyes_reaches_staff(
    client, ready_user, clerk, finance, finance2
):
    """R-REF-1: the buttons go through the services; four eyes is refused with a message."""
    bank_topup(ready_user, "30.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    client.force_login(finance)
    response = client.post(f"{BASE}{request.pk}/transition/take/", {"reason": "mine"})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW and request.reviewer == finance
    response = client.post(f"{BASE}{request.pk}/transition/approve/", {"reason": "ok"}, follow=True)
    assert "Four eyes" in response.content.decode()
    request.refresh_from_db()
    assert request.state == RefundState.UNDER_REVIEW
    client.force_login(finance2)
    client.post(f"{BASE}{request.pk}/transition/approve/", {"reason": "ok"})
    request.refresh_from_db()
    assert request.state == RefundState.APPROVED
    client.post(f"{BASE}{request.pk}/transition/start_payout/", {"reason": "go"})
    client.post(
        f"{BASE}{request.pk}/transition/record_transfer/",
        {"bank_reference": "TR-9", "transferred_on": "2026-12-01", "reason": "paid"},
    )
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert money(ready_user.balance_account)["hold"] == 0


def test_reject_button_needs_a_reason(client, ready_user, clerk, cs):
    """R-REF-1/R-REF-3: the reject button refuses an empty reason; with one, the hold
    returns to cash."""
    bank_topup(ready_user, "30.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    client.force_login(cs)
    client.post(f"{BASE}{request.pk}/transition/reject/", {"reason": ""})
    request.refresh_from_db()
    assert request.state == RefundState.SUBMITTED
    client.post(f"{BASE}{request.pk}/transition/reject/", {"reason": "no proof of payment"})
    request.refresh_from_db()
    assert request.state == RefundState.REJECTED and money(ready_user.balance_account)["cash"] == 30


def test_csv_export_of_paid_refunds(client, ready_user, clerk, cs, finance):
    """R-REF-5/R-ADM-3: finance export the paid refunds, one row per lot paid."""
    bank_topup(ready_user, "30.00", clerk)
    request = submit_refund(ready_user, proofs=[proof()])
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    start_payout(request, actor=finance)
    record_transfer(
        request, actor=finance, bank_reference="TR-5", transferred_on=datetime.date(2026, 12, 2)
    )
    client.force_login(finance)
    response = client.post(
        BASE, {"action": "export_paid_refunds", "_selected_action": [request.pk]}
    )
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    header, row = text.strip().splitlines()
    assert "refunded (CNY)" in header
    assert "TR-5" in row and "30.00" in row and ready_user.email in row
    assert Decimal("30.00") == request.lines.get().refunded.amount
