"""R-ADM-4 for disputes: staff never open, decide, settle or pay a dispute of their own
account; a colleague does."""

import pytest
from django.core.exceptions import ValidationError

from disputes.services.decisions import accept_evidence, reject_evidence, withdraw
from disputes.services.opening import add_evidence
from tests.factories import StaffFactory, grant
from tests.topups.conftest import accept, make_agreement, verify

from .conftest import CS_PERMS, RISK_PERMS, evidence, open_for, third_party_bank_topup

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_customer(clerk):
    """A CS agent and risk officer who is also a customer with a third-party top-up."""
    me = grant(StaffFactory(), *CS_PERMS, *RISK_PERMS)
    verify(me)
    accept(me, make_agreement())
    me.disputed = third_party_bank_topup(me, "50.00", clerk)
    return me


def test_staff_cannot_open_a_dispute_on_their_own_account(staff_customer):
    """R-ADM-4: opening a dispute on one's own top-up is refused; nothing is locked."""
    with pytest.raises(ValidationError) as err:
        open_for([staff_customer.disputed], staff_customer, "50.00")
    assert err.value.code == "own_case"
    staff_customer.balance_account.refresh_from_db()
    assert staff_customer.balance_account.standing == "active"


def test_staff_cannot_decide_their_own_dispute(staff_customer):
    """R-ADM-4: accepting or rejecting one's own evidence, or recording a withdrawal, is
    refused; a colleague decides."""
    colleague = grant(StaffFactory(), *CS_PERMS, *RISK_PERMS)
    dispute = open_for([staff_customer.disputed], colleague, "50.00")
    add_evidence(dispute, evidence(), actor=staff_customer)
    for decide in (accept_evidence, reject_evidence, withdraw):
        with pytest.raises(ValidationError) as err:
            decide(dispute, actor=staff_customer, reason="mine")
        assert err.value.code == "own_case"
    dispute.refresh_from_db()
    assert dispute.state == "open"
    accept_evidence(dispute, actor=colleague, reason="consent shown")
    dispute.refresh_from_db()
    assert dispute.state == "cleared"
