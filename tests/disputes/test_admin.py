"""The dispute desk in admin (R-DIS-1 … R-DIS-5): the queue by days left, opening a
dispute, the buttons running the services, audited file views, the debt queue and the
bank-transfer button; query counts pinned."""

import datetime

import pytest

from core.models import AuditRecord
from disputes.models import Dispute, DisputeState, PayoutState, RightsHolderPayout
from tests.factories import StaffFactory, grant

from .conftest import (
    CS_PERMS,
    FINANCE_PERMS,
    RISK_PERMS,
    after_deadline,
    consume,
    evidence,
    open_for,
    run_deadline,
    third_party_bank_topup,
)

pytestmark = pytest.mark.django_db
BASE = "/admin/disputes/dispute/"


def _staff(*perms):
    return grant(StaffFactory(), *perms)


def test_queue_is_ordered_by_days_left_with_few_queries(
    client, ready_user, clerk, cs, django_assert_max_num_queries
):
    """R-DIS-1: the queue puts the fewest days left first (open deadlines and debts' due
    dates together); its query count does not grow with the rows."""
    now = datetime.datetime.now(datetime.UTC)
    late = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00", now=now)
    soon = open_for(
        [third_party_bank_topup(ready_user, "10.00", clerk)],
        cs,
        "10.00",
        now=now - datetime.timedelta(days=20),
    )
    client.force_login(cs)
    with django_assert_max_num_queries(12):
        response = client.get(BASE)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index(f"{BASE}{soon.pk}/change/") < body.index(f"{BASE}{late.pk}/change/")
    for _ in range(3):
        open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    with django_assert_max_num_queries(12):
        assert client.get(BASE).status_code == 200


def test_cs_opens_a_dispute_from_admin_and_bad_input_is_shown(client, ready_user, clerk, cs):
    """R-DIS-1: CS open a dispute with the order numbers; an amount above the cash and an
    unknown order are refused on the form and open nothing."""
    topup = third_party_bank_topup(ready_user, "50.00", clerk)
    client.force_login(cs)
    form = {
        "topups": topup.out_trade_no,
        "amount": "60.00",
        "reported_by": "Alipay risk desk",
        "reported_via": "phone",
        "rights_holder_name": "Li Si",
    }
    response = client.post(f"{BASE}open/", form)
    assert response.status_code == 200 and "more than the top-ups" in response.content.decode()
    response = client.post(f"{BASE}open/", {**form, "topups": "NOPE", "amount": "50.00"})
    assert "unknown" in response.content.decode()
    assert not Dispute.objects.exists()
    response = client.post(f"{BASE}open/", {**form, "amount": "50.00"})
    dispute = Dispute.objects.get()
    assert response.status_code == 302 and dispute.state == DisputeState.OPEN
    page = client.get(f"{BASE}{dispute.pk}/change/").content.decode()
    assert topup.out_trade_no in page and "L* S*" in page  # the payer / holder, masked
    assert "Li Si" not in page


def test_staff_without_the_permission_cannot_open(client, ready_user, clerk):
    """R-DIS-1: opening needs disputes.open_dispute."""
    client.force_login(_staff("disputes.view_dispute"))
    assert client.get(f"{BASE}open/").status_code == 403


def test_accept_button_runs_the_service_and_refusals_reach_staff(
    client, ready_user, clerk, cs, risk
):
    """R-DIS-2: the risk officer's buttons: accepting without evidence is refused with a
    message; with evidence it clears the dispute; a CS agent has no accept button."""
    dispute = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    client.force_login(risk)
    response = client.post(
        f"{BASE}{dispute.pk}/transition/accept_evidence/", {"reason": "ok"}, follow=True
    )
    assert "no evidence" in response.content.decode()
    from disputes.services.opening import add_evidence

    add_evidence(dispute, evidence(), actor=ready_user)
    client.post(f"{BASE}{dispute.pk}/transition/accept_evidence/", {"reason": "signed"})
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.CLEARED
    client.force_login(cs)
    page = client.get(f"{BASE}{dispute.pk}/change/").content.decode()
    assert "transition/accept_evidence" not in page


def test_file_view_needs_the_permission_and_is_audited(client, ready_user, clerk, cs):
    """R-DIS-2: an evidence file opens only with disputes.view_dispute_file; each view is
    audited; without it staff see "received (encrypted)"."""
    from disputes.services.opening import add_evidence

    dispute = open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
    row = add_evidence(dispute, evidence(), actor=ready_user)
    viewer = _staff("disputes.view_dispute", "disputes.view_disputefile")
    client.force_login(viewer)
    page = client.get(f"{BASE}{dispute.pk}/change/").content.decode()
    assert "received (encrypted)" in page
    response = client.get(f"{BASE}{dispute.pk}/file/{row.pk}/")
    assert response.status_code == 302
    client.force_login(cs)
    response = client.get(f"{BASE}{dispute.pk}/file/{row.pk}/")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert AuditRecord.objects.filter(action="view_file", actor=cs).count() == 1


def test_debt_queue_proof_waiver_and_bank_transfer(client, ready_user, clerk, cs, finance):
    """R-DIS-3 / R-DIS-5: the debt queue lists the debt; CS attach the proof and record the
    waiver with the button; finance records the rights holder's bank transfer."""
    account = ready_user.balance_account
    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    consume(account, "10.00")
    dispute = open_for([topup], cs, "30.00")
    run_deadline(after_deadline(dispute))
    client.force_login(cs)
    queue = client.get("/admin/disputes/disputedebt/").content.decode()
    assert f"/admin/disputes/disputedebt/{dispute.pk}/change/" in queue
    response = client.get(f"/admin/disputes/disputedebt/{dispute.pk}/change/")
    assert response.status_code == 302 and response["Location"].endswith(
        f"{BASE}{dispute.pk}/change/"
    )
    response = client.post(
        f"{BASE}{dispute.pk}/transition/waive_debt/", {"reason": "by phone"}, follow=True
    )
    assert "Attach the proof" in response.content.decode()
    response = client.post(  # evidence of consent on a debt: wrong state, nothing stored
        f"{BASE}{dispute.pk}/proof/", {"kind": "evidence", "file": evidence("late.pdf")}
    )
    assert "only be added while the dispute is open" in response.content.decode()
    assert not dispute.files.exists()
    client.post(
        f"{BASE}{dispute.pk}/proof/",
        {"kind": "debt_proof", "file": evidence("waiver.pdf"), "note": "signed"},
    )
    client.post(f"{BASE}{dispute.pk}/transition/waive_debt/", {"reason": "signed waiver"})
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.SETTLED
    payout = RightsHolderPayout.objects.get(dispute=dispute)
    client.force_login(finance)
    client.post(
        f"/admin/disputes/rightsholderpayout/{payout.pk}/transition/record_transfer/",
        {"reason": "paid", "bank_reference": "REF-9", "transferred_on": "2026-04-02"},
    )
    payout.refresh_from_db()
    assert payout.state == PayoutState.PAID and payout.reference == "REF-9"


def test_groups_have_the_dispute_permissions():
    """R-DIS-2: least privilege: risk officers review evidence, CS open and record debts'
    ends, finance pays; the fixtures use the same lists."""
    from disputes.staff import STAFF_PERMISSIONS

    assert "disputes.review_dispute_evidence" in STAFF_PERMISSIONS["risk_officer"]
    assert "disputes.review_dispute_evidence" not in STAFF_PERMISSIONS["cs_agent"]
    assert "disputes.pay_dispute" in STAFF_PERMISSIONS["finance_approver"]
    assert "disputes.view_dispute_file" not in STAFF_PERMISSIONS["auditor"]
    assert set(CS_PERMS) == set(STAFF_PERMISSIONS["cs_agent"]) and RISK_PERMS and FINANCE_PERMS
