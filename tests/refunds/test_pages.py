"""The user's refund pages (R-REF-1 … R-REF-3): the preview, filing with proof files,
status and history, cancellation; bad input changes nothing."""

import pytest
from django.urls import reverse

from refunds.models import RefundRequest
from tests.factories import UserFactory

from .conftest import bank_topup, consume, discount_for, money, proof

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(ready_user, clerk):
    """The user with a paid 100.00 bank top-up, 30.00 of it consumed."""
    topup = bank_topup(ready_user, "100.00", clerk)
    consume(ready_user.balance_account, "30.00")
    return topup


def test_preview_page_shows_the_refundable_figures_per_top_up(client, ready_user, paid):
    """R-REF-2: the page shows per top-up what was paid, consumed and is refundable,
    the bonus earned and used, and the total — the same figures as the preview."""
    discount_for(paid, "10.00")
    client.force_login(ready_user)
    page = client.get(reverse("refunds:index")).content.decode()
    assert 'id="refund-preview"' in page
    assert ">¥100.00<" in page and ">¥30.00<" in page  # paid, consumed
    assert 'id="refund-total"' in page and ">¥70.00<" in page  # unconsumed, no bonus used yet
    assert 'id="refund-form"' in page


def test_user_files_a_refund_with_a_proof_and_the_money_is_held(client, ready_user, paid):
    """R-REF-1 / R-REF-3: filed from the pages with a proof file; the refundable cash moves
    to refund hold at once; the user lands on the request's page."""
    client.force_login(ready_user)
    response = client.post(
        reverse("refunds:index"), {"reason": "No longer needed", "proofs": [proof()]}
    )
    refund = RefundRequest.objects.get(account__user=ready_user)
    assert response.status_code == 302
    assert response["Location"] == reverse("refunds:detail", args=[refund.pk])
    assert refund.state == "submitted" and refund.held_micro == 70_000_000
    figures = money(ready_user.balance_account)
    assert figures["cash"] == 0 and figures["hold"] == 70
    page = client.get(reverse("refunds:detail", args=[refund.pk])).content.decode()
    assert "Submitted" in page and 'id="refund-history"' in page


@pytest.mark.parametrize(
    ("amount", "files"),
    [
        ("10.001", "pdf"),  # more decimals than whole fen
        ("70.01", "pdf"),  # above the refundable amount
        ("-5", "pdf"),  # negative
        ("", "none"),  # no proof
        ("", "text"),  # a proof of the wrong type
    ],
)
def test_bad_input_is_refused_and_changes_nothing(client, ready_user, paid, amount, files):
    """R-REF-2 / bad input: a clear error, no request, no hold."""
    uploads = {
        "pdf": [proof()],
        "none": [],
        "text": [proof("notes.txt", b"just text, not a document")],
    }[files]
    client.force_login(ready_user)
    response = client.post(
        reverse("refunds:index"), {"amount": amount, "reason": "x", "proofs": uploads}
    )
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert not RefundRequest.objects.exists()
    assert money(ready_user.balance_account)["hold"] == 0


def test_user_cancels_before_approval_and_the_money_comes_back(client, ready_user, paid):
    """R-REF-1 / R-REF-3: the user cancels a request not yet approved; the hold is released."""
    client.force_login(ready_user)
    client.post(reverse("refunds:index"), {"reason": "oops", "proofs": [proof()]})
    refund = RefundRequest.objects.get()
    response = client.post(reverse("refunds:cancel", args=[refund.pk]))
    assert response.status_code == 302
    refund.refresh_from_db()
    assert refund.state == "cancelled"
    figures = money(ready_user.balance_account)
    assert figures["hold"] == 0 and figures["cash"] == 70
    again = client.post(reverse("refunds:cancel", args=[refund.pk]))  # wrong state now
    assert again.status_code == 302
    refund.refresh_from_db()
    assert refund.state == "cancelled"


def test_another_users_request_is_not_found(client, ready_user, paid):
    """Bad input: another user's request id is a 404 for the page and for cancelling."""
    client.force_login(ready_user)
    client.post(reverse("refunds:index"), {"reason": "mine", "proofs": [proof()]})
    refund = RefundRequest.objects.get()
    stranger = UserFactory()
    client.force_login(stranger)
    assert client.get(reverse("refunds:detail", args=[refund.pk])).status_code == 404
    assert client.post(reverse("refunds:cancel", args=[refund.pk])).status_code == 404
    refund.refresh_from_db()
    assert refund.state == "submitted"


def test_a_frozen_account_is_told_it_cannot_file(client, ready_user, paid):
    """R-ACC-8 / R-REF-1: a frozen account sees why and cannot file."""
    from accounts.services import change_standing

    change_standing(ready_user.balance_account, "freeze", authority="Court", document_number="1")
    client.force_login(ready_user)
    page = client.get(reverse("refunds:index")).content.decode()
    assert 'id="refund-not-allowed"' in page and 'id="refund-form"' not in page
    response = client.post(reverse("refunds:index"), {"reason": "x", "proofs": [proof()]})
    assert response.status_code == 400
    assert not RefundRequest.objects.exists()


def test_pages_need_login(client):
    """The refund pages are for logged-in users only."""
    assert client.get(reverse("refunds:index")).status_code == 302


def _page_queries(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_pages_and_queue_do_not_query_per_request(client, ready_user, paid, cs):
    """R-ADM-3: the user's refund page and the staff queue cost the same number of
    queries for one request as for several (no query per row)."""
    from refunds.services.decisions import cancel_refund
    from refunds.services.filing import submit_refund

    def file_and_cancel():
        refund = submit_refund(ready_user, proofs=[proof()], reason="r")
        cancel_refund(refund, actor=ready_user)

    file_and_cancel()
    client.force_login(ready_user)
    user_one = _page_queries(client, reverse("refunds:index"))
    client.force_login(cs)
    queue_one = _page_queries(client, "/admin/refunds/refundrequest/")
    for _ in range(3):
        file_and_cancel()
    client.force_login(ready_user)
    assert _page_queries(client, reverse("refunds:index")) == user_one
    client.force_login(cs)
    assert _page_queries(client, "/admin/refunds/refundrequest/") == queue_one
