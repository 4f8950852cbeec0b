"""R-ADM-4: money that enters without a payment notification needs a second staff member.

Manual top-ups, crediting a differing amount, statement rows that need a decision and
any hand-confirmed amount above settings.TOPUP_FOUR_EYES_LIMIT wait in `approval`; a
second finance approver credits them, never the proposer and never the beneficiary.
"""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from billing.models import Lot
from core.models import AuditRecord
from core.workflow import perform_transition
from tests.factories import StaffFactory, cny, grant
from tests.topups.conftest import balance
from topups.models import TopUp
from topups.services.orders import start_topup
from topups.services.remittances import (
    approve_credit,
    confirm_remittance,
    decline_credit,
    record_manual_topup,
    resolve_review,
)
from topups.services.statements import import_bank_statement

pytestmark = pytest.mark.django_db

FINANCE = ("topups.confirm_remittance", "topups.resolve_review", "topups.view_topup")


@pytest.fixture
def finance():
    return grant(StaffFactory(), *FINANCE)


@pytest.fixture
def finance2():
    return grant(StaffFactory(), *FINANCE)


def _manual(user, actor, amount="50000.00"):
    return record_manual_topup(
        user,
        amount,
        actor=actor,
        payer_name="Zhang San",
        payer_account="6222 0000 1111",
        reference="POS-1",
        reason="paid at the counter",
    )


def _confirm(topup, actor, amount, reference="BK-1"):
    return confirm_remittance(
        topup,
        actor=actor,
        received_amount=amount,
        payer_name="Zhang San",
        payer_account="6222 0000 1111",
        bank_reference=reference,
        reason="seen on statement",
    )


def test_manual_topup_is_only_a_proposal_until_a_second_approver(ready_user, finance, finance2):
    """R-ADM-4: one finance user records a manual top-up: nothing is credited; the proposer
    cannot approve it; a second finance approver does, and the audit names both."""
    topup = _manual(ready_user, finance, "500.00")
    assert topup.state == "approval" and topup.proposed_by == finance
    assert balance(ready_user)["cash"] == cny(0)
    assert not Lot.objects.exists()
    with pytest.raises(ValidationError) as err:
        approve_credit(topup, actor=finance, reason="mine")
    assert err.value.code == "four_eyes"
    assert balance(ready_user)["cash"] == cny(0)
    approve_credit(topup, actor=finance2, reason="receipt checked")
    topup.refresh_from_db()
    assert topup.state == "paid" and topup.approved_by == finance2
    assert balance(ready_user)["cash"] == cny("500.00")
    actions = dict(
        AuditRecord.objects.filter(object_id=str(topup.pk)).values_list("action", "actor")
    )
    assert actions["propose_credit"] == finance.pk and actions["approve_credit"] == finance2.pk


def test_finance_cannot_top_up_their_own_account(finance, finance2, agreement):
    """R-ADM-4: a finance user recording 50,000 CNY to their own account is refused, and a
    colleague's proposal for them cannot be approved by them either."""
    from tests.topups.conftest import accept, verify

    verify(finance)
    accept(finance, agreement)
    with pytest.raises(ValidationError) as err:
        _manual(finance, finance)
    assert err.value.code == "own_case"
    assert not TopUp.objects.exists()
    topup = _manual(finance, finance2, "100.00")
    with pytest.raises(ValidationError) as err:
        approve_credit(topup, actor=finance, reason="for me")
    assert err.value.code == "own_case"
    topup.refresh_from_db()
    assert topup.state == "approval"
    assert balance(finance)["cash"] == cny(0)


def test_confirming_own_bank_order_is_refused(finance, agreement):
    """R-ADM-4: no one confirms a remittance for their own account."""
    from tests.topups.conftest import accept, verify

    verify(finance)
    accept(finance, agreement)
    order = start_topup(finance, "100.00", channel="bank")
    with pytest.raises(ValidationError):
        _confirm(order, finance, "100.00")
    order.refresh_from_db()
    assert order.state == "created"


def test_differing_amount_cannot_be_credited_alone(ready_user, finance, finance2):
    """R-ADM-4: a bank order confirmed with another amount goes to review; crediting it is
    a proposal; the one who proposed cannot approve; a second approver credits it."""
    order = start_topup(ready_user, "100.00", channel="bank")
    topup = _confirm(order, finance, "49000.00")
    assert topup.state == "review"
    topup = resolve_review(topup, "credit_received", actor=finance, reason="customer agrees")
    assert topup.state == "approval"
    assert balance(ready_user)["cash"] == cny(0)
    with pytest.raises(ValidationError):
        approve_credit(topup, actor=finance, reason="again me")
    approve_credit(topup, actor=finance2, reason="checked the statement")
    topup.refresh_from_db()
    assert topup.state == "paid"
    assert balance(ready_user)["cash"] == cny("49000.00")


def test_above_the_limit_even_a_matching_amount_needs_a_second_approver(
    ready_user, finance, finance2, settings
):
    """R-ADM-4: above TOPUP_FOUR_EYES_LIMIT, a hand-confirmed remittance always waits for a
    second approver; at or below it a matching amount is credited at once."""
    settings.TOPUP_FOUR_EYES_LIMIT = "1000.00"
    small = _confirm(start_topup(ready_user, "1000.00", channel="bank"), finance, "1000.00")
    assert small.state == "paid"
    big = _confirm(
        start_topup(ready_user, "1000.01", channel="bank"), finance, "1000.01", reference="BK-2"
    )
    assert big.state == "approval"
    assert balance(ready_user)["cash"] == cny("1000.00")
    approve_credit(big, actor=finance2, reason="ok")
    assert balance(ready_user)["cash"] == cny("2000.01")


def test_declined_credit_returns_to_review_and_can_be_returned(ready_user, finance, finance2):
    """R-ADM-4: the second approver may decline: the case goes back to review, nothing
    credited, and the money can be returned to the payer."""
    topup = _manual(ready_user, finance, "80.00")
    with pytest.raises(ValidationError):
        decline_credit(topup, actor=finance2, reason=" ")
    decline_credit(topup, actor=finance2, reason="no receipt")
    topup.refresh_from_db()
    assert topup.state == "review" and topup.proposed_by is None
    resolve_review(topup, "return_to_payer", actor=finance2, reason="no receipt")
    topup.refresh_from_db()
    assert topup.state == "returned"
    assert not Lot.objects.exists()


def test_approval_needs_the_permission_and_the_state(ready_user, finance):
    """R-ADM-4, R-ADM-1: staff without topups.resolve_review cannot approve; a top-up that
    awaits no approval cannot be approved."""
    topup = _manual(ready_user, finance, "80.00")
    clerk = grant(StaffFactory(), "topups.confirm_remittance")
    with pytest.raises(PermissionDenied):
        approve_credit(topup, actor=clerk, reason="ok")
    order = start_topup(ready_user, "10.00", channel="bank")
    with pytest.raises(ValidationError) as err:
        approve_credit(order, actor=clerk, reason="ok")
    assert err.value.code == "wrong_state"


def test_statement_rows_that_need_a_decision_are_not_credited(
    ready_user, finance, finance2, settings
):
    """R-ADM-4: a statement row with another amount goes to review, a row above the limit
    awaits a second approver; only a matching row within the limit is credited."""
    settings.TOPUP_FOUR_EYES_LIMIT = "1000.00"
    a = start_topup(ready_user, "10.00", channel="bank")
    b = start_topup(ready_user, "20.00", channel="bank")
    c = start_topup(ready_user, "5000.00", channel="bank")
    text = (
        "reference,amount,payer_name,payer_account,bank_reference\n"
        f"{a.remittance_reference},10.00,Zhang San,6222,S-1\n"
        f"{b.remittance_reference},25.00,Zhang San,6222,S-2\n"
        f"{c.remittance_reference},5000.00,Zhang San,6222,S-3\n"
    )
    report = import_bank_statement(text, actor=finance)
    assert report.errors == []
    assert report.confirmed == [a.remittance_reference]
    assert report.reviewed == [b.remittance_reference]
    assert report.awaiting_approval == [c.remittance_reference]
    assert balance(ready_user)["cash"] == cny("10.00")
    perform_transition(c, "approve_credit", actor=finance2, reason="statement checked")
    assert balance(ready_user)["cash"] == cny("5010.00")


def test_admin_buttons_run_the_four_eyes_services(client, ready_user, finance, finance2):
    """R-ADM-4: the admin's approve button refuses the proposer with a message and credits
    for the second approver."""
    topup = _manual(ready_user, finance, "60.00")
    url = f"/admin/topups/topup/{topup.pk}/transition/approve_credit/"
    client.force_login(finance)
    client.post(url, {"reason": "me again"}, follow=True)
    topup.refresh_from_db()
    assert topup.state == "approval"
    client.force_login(finance2)
    response = client.post(url, {"reason": "ok"})
    assert response.status_code == 302
    topup.refresh_from_db()
    assert topup.state == "paid"
    assert balance(ready_user)["cash"] == cny("60.00")
