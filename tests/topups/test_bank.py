"""Bank transfer top-ups confirmed by finance (R-TOP-1, R-TOP-2, R-TOP-3)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from billing.models import Lot
from core.models import AuditRecord
from tests.factories import StaffFactory, cny, grant
from topups.models import TopUp
from topups.services.orders import start_topup
from topups.services.preconditions import TopUpRefused
from topups.services.remittances import (
    approve_credit,
    confirm_remittance,
    record_manual_topup,
    resolve_review,
)
from topups.services.statements import import_bank_statement

from .conftest import balance


def _second_approver():
    return grant(StaffFactory(), "topups.resolve_review", "topups.view_topup")


@pytest.fixture
def transfer(ready_user):
    return start_topup(ready_user, "500.00", channel="bank")


def _confirm(topup, actor, amount="500.00", **kw):
    return confirm_remittance(
        topup,
        actor=actor,
        received_amount=amount,
        payer_name=kw.get("payer_name", "Zhang San"),
        payer_account=kw.get("payer_account", "6222 0000 1111"),
        bank_reference=kw.get("bank_reference", "BK20261128001"),
        reason="seen on statement",
    )


@pytest.mark.django_db
def test_bank_page_shows_receiving_account_and_reference(client, transfer, settings):
    """R-TOP-1: the user gets the platform's account and a unique remittance reference."""
    client.force_login(transfer.account.user)
    body = client.get(f"/topups/{transfer.pk}/").content.decode()
    assert settings.BANK_RECEIVING_ACCOUNT["number"] in body
    assert transfer.remittance_reference in body


@pytest.mark.django_db
def test_finance_confirms_and_the_lot_is_credited(transfer, finance):
    """R-TOP-1, R-TOP-2: finance confirms; the lot is credited with the payer recorded."""
    topup = _confirm(transfer, finance)
    assert topup.state == "paid"
    assert topup.lot.amount == cny("500.00")
    assert topup.lot.payer_name == "Zhang San" and not topup.lot.third_party
    assert balance(topup.account.user)["cash"] == cny("500.00")
    assert AuditRecord.objects.filter(
        object_id=str(topup.pk), action="confirm_remittance", actor=finance
    ).exists()


@pytest.mark.django_db
def test_third_party_remitter_marks_the_lot(transfer, finance):
    """R-TOP-3: a remitter who is not the holder marks the lot third-party."""
    topup = _confirm(transfer, finance, payer_name="Wang Wu Trading Co.")
    assert topup.third_party and topup.lot.third_party


@pytest.mark.django_db
def test_confirmation_without_finance_permission_is_refused(transfer):
    """R-TOP-1: staff without the finance permission cannot confirm; nothing changes."""
    with pytest.raises(PermissionDenied):
        _confirm(transfer, StaffFactory())
    with pytest.raises(PermissionDenied):
        _confirm(transfer, transfer.account.user)
    transfer.refresh_from_db()
    assert transfer.state == "created"
    assert not Lot.objects.exists()


@pytest.mark.django_db
def test_confirming_twice_is_refused(transfer, finance):
    """R-TOP-1, R-LED-5: a remittance is confirmed once."""
    _confirm(transfer, finance)
    with pytest.raises(ValidationError):
        _confirm(transfer, finance, bank_reference="BK-OTHER")
    assert Lot.objects.count() == 1
    assert balance(transfer.account.user)["cash"] == cny("500.00")


@pytest.mark.django_db
def test_different_amount_goes_to_review_not_credited(transfer, finance):
    """R-TOP-1: an amount that differs from the order is never credited silently."""
    topup = _confirm(transfer, finance, amount="499.00")
    assert topup.state == "review"
    assert topup.received_amount == cny("499.00")
    assert not Lot.objects.exists()
    with pytest.raises(ValidationError):
        resolve_review(topup, "credit_received", actor=finance, reason="")
    topup = resolve_review(
        topup, "credit_received", actor=finance, reason="customer confirmed the short amount"
    )
    assert topup.state == "approval"  # four eyes (R-ADM-4): a second approver credits it
    topup = approve_credit(topup, actor=_second_approver(), reason="statement checked")
    assert topup.state == "paid"
    assert topup.lot.amount == cny("499.00")


@pytest.mark.django_db
def test_review_can_return_the_money(transfer, finance):
    """R-TOP-1: finance may return a mismatched remittance instead; nothing credited."""
    topup = _confirm(transfer, finance, amount="5000.00")
    topup = resolve_review(topup, "return_to_payer", actor=finance, reason="wrong sum")
    assert topup.state == "returned"
    assert not Lot.objects.exists()


@pytest.mark.django_db
def test_bad_received_amount_is_refused(transfer, finance):
    """R-TOP-1: received amounts are whole-fen CNY."""
    for bad in ("500.001", "-1", "abc"):
        with pytest.raises(ValidationError):
            _confirm(transfer, finance, amount=bad)
    transfer.refresh_from_db()
    assert transfer.state == "created"


@pytest.mark.django_db
def test_same_bank_reference_cannot_confirm_two_top_ups(ready_user, transfer, finance):
    """R-LED-5: one bank transaction credits one top-up."""
    other = start_topup(ready_user, "500.00", channel="bank")
    _confirm(transfer, finance)
    with pytest.raises(ValidationError):
        _confirm(other, finance)
    other.refresh_from_db()
    assert other.state == "created"


@pytest.mark.django_db
def test_statement_import_all_or_nothing(ready_user, finance):
    """R-TOP-1: a statement with one bad row applies nothing and reports the row."""
    a = start_topup(ready_user, "10.00", channel="bank")
    b = start_topup(ready_user, "20.00", channel="bank")
    header = "reference,amount,payer_name,payer_account,bank_reference\n"
    bad = header + (
        f"{a.remittance_reference},10.00,Zhang San,622,BK1\nRMNOSUCH1,20.00,Zhang San,622,BK2\n"
    )
    report = import_bank_statement(bad, actor=finance)
    assert report.errors and report.errors[0][0] == 3
    assert TopUp.objects.filter(state="created").count() == 2
    good = header + (
        f"{a.remittance_reference},10.00,Zhang San,622,BK1\n"
        f"{b.remittance_reference.lower()},20.50,Zhang San,622,BK2\n"
    )
    report = import_bank_statement(good, actor=finance)
    assert not report.errors
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.state, b.state) == ("paid", "review")


@pytest.mark.django_db
def test_statement_import_needs_finance(ready_user):
    """R-TOP-1: only finance imports statements."""
    with pytest.raises(PermissionDenied):
        import_bank_statement("reference\n", actor=StaffFactory())


@pytest.mark.django_db
def test_admin_changelist_queries_are_bounded(
    admin_client, ready_user, django_assert_max_num_queries
):
    """Admin top-up list: select_related keeps it to a fixed number of queries."""
    for _ in range(5):
        start_topup(ready_user, "10.00", channel="bank")
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/topups/topup/?q=example.com")
    assert response.status_code == 200


@pytest.mark.django_db
def test_manual_other_channel_by_finance(ready_user, finance, agreement):
    """R-TOP-1, R-ADM-4: finance records an "other" payment; a second approver credits it;
    preconditions still apply."""
    from tests.factories import UserFactory

    topup = record_manual_topup(
        ready_user,
        "42.00",
        actor=finance,
        payer_name="Zhang San",
        payer_account="POS-1",
        reference="OTHER-1",
        reason="paid at the counter",
    )
    assert (topup.channel, topup.state) == ("other", "approval")
    assert balance(ready_user)["cash"] == cny("0")
    topup = approve_credit(topup, actor=_second_approver(), reason="receipt checked")
    assert (topup.channel, topup.state) == ("other", "paid")
    assert balance(ready_user)["cash"] == cny("42.00")
    with pytest.raises(PermissionDenied):
        record_manual_topup(
            ready_user,
            "1.00",
            actor=StaffFactory(),
            payer_name="",
            payer_account="x",
            reference="OTHER-2",
            reason="x",
        )
    with pytest.raises(TopUpRefused):
        record_manual_topup(
            UserFactory(),
            "1.00",
            actor=finance,
            payer_name="",
            payer_account="x",
            reference="OTHER-3",
            reason="x",
        )
    assert TopUp.objects.count() == 1


@pytest.mark.django_db
def test_admin_record_manual_and_statement_upload(client, ready_user, finance):
    """R-TOP-1: the admin forms: manual payment recorded; a non-CSV upload is refused."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(finance)
    response = client.post(
        "/admin/topups/topup/record-manual/",
        {
            "email": ready_user.email,
            "amount": "12.00",
            "payer_name": "Zhang San",
            "payer_account": "x",
            "reference": "M-1",
            "reason": "cash",
        },
    )
    assert response.status_code == 302
    assert TopUp.objects.get().state == "approval"  # a second approver credits it
    bad = SimpleUploadedFile("statement.exe", b"MZ\x90\x00", content_type="application/x-msdos")
    response = client.post("/admin/topups/topup/import-statement/", {"statement": bad})
    assert response.status_code == 200
    assert "Upload a .csv file" in response.content.decode()
    big = SimpleUploadedFile("statement.csv", b"x" * (1024 * 1024 + 1), content_type="text/csv")
    response = client.post("/admin/topups/topup/import-statement/", {"statement": big})
    assert "larger than 1 MB" in response.content.decode()
    assert TopUp.objects.count() == 1
    client.force_login(StaffFactory())
    assert client.get("/admin/topups/topup/import-statement/").status_code == 403


@pytest.mark.django_db
def test_review_resolution_needs_the_permission(transfer, finance):
    """R-TOP-1: staff without topups.resolve_review cannot credit a reviewed top-up."""
    topup = _confirm(transfer, finance, amount="400.00")
    confirmer_only = grant(StaffFactory(), "topups.confirm_remittance")
    with pytest.raises(PermissionDenied):
        resolve_review(topup, "credit_received", actor=confirmer_only, reason="x")
    topup.refresh_from_db()
    assert topup.state == "review"
    assert not Lot.objects.exists()


@pytest.mark.django_db
def test_money_for_a_frozen_account_goes_to_review_not_the_balance(transfer, finance):
    """R-ACC-8: a frozen account cannot top up; a wire that arrives anyway is never
    credited silently — it waits in review, and crediting it from review is refused."""
    from accounts.services import change_standing
    from core.workflow import WorkflowError

    change_standing(
        transfer.account, "freeze", reason="court order", authority="Court", document_number="F1"
    )
    topup = _confirm(transfer, finance)
    assert topup.state == "review"
    assert balance(transfer.account.user)["cash"] == cny("0")
    assert not Lot.objects.filter(account=transfer.account).exists()
    with pytest.raises(WorkflowError):
        resolve_review(topup, "credit_received", actor=finance, reason="try anyway")
    topup.refresh_from_db()
    assert topup.state == "review"
    assert not Lot.objects.filter(account=transfer.account).exists()
    resolve_review(topup, "return_to_payer", actor=finance, reason="frozen")
    topup.refresh_from_db()
    assert topup.state == "returned"


@pytest.mark.django_db
def test_bank_orders_wait_days_alipay_orders_minutes(ready_user, settings):
    """R-TOP-1: unpaid orders expire after a window that fits their channel."""
    from datetime import timedelta

    settings.TOPUP_EXPIRE_MINUTES = 120
    settings.TOPUP_BANK_EXPIRE_HOURS = 168
    wire = start_topup(ready_user, "10.00", channel="bank")
    online = start_topup(ready_user, "10.00", channel="alipay")
    assert wire.expires_at - wire.created_at > timedelta(days=6)
    assert online.expires_at - online.created_at <= timedelta(minutes=121)
