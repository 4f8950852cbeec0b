"""A dispute end to end in the browser (R-DIS-1, R-DIS-2): the user sees the lock and
the deadline counting down, uploads evidence from the page, a risk officer accepts it
with the admin button, and the user sees the dispute cleared and the account unlocked."""

import pytest

from accounts.models import Standing
from disputes.models import DisputeState
from tests.factories import PASSWORD, StaffFactory, grant

from .conftest import PDF, RISK_PERMS, open_for, third_party_bank_topup


def _login(page, email):
    page.context.clear_cookies()
    page.goto("/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


def _admin_login(page, email):
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_user_uploads_evidence_and_risk_officer_accepts_it(page, ready_user, clerk, cs):
    """R-DIS-2: evidence uploaded from the user's page (a bad file first, refused with a
    message), accepted by a risk officer's button; the user sees the outcome."""
    dispute = open_for([third_party_bank_topup(ready_user, "80.00", clerk)], cs, "80.00")
    risk = grant(StaffFactory(), *RISK_PERMS)

    _login(page, ready_user.email)
    page.goto("/disputes/")
    page.click(f"a[href='/disputes/{dispute.pk}/']")
    assert "Open: awaiting evidence" in page.inner_text("#dispute-state")
    assert "days left" in page.inner_text("#dispute-days-left")
    page.set_input_files(
        "#id_file",
        files=[{"name": "consent.pdf", "mimeType": "application/pdf", "buffer": b"GIF89a"}],
    )
    page.click("#evidence-form button[type=submit]")
    page.wait_for_selector("#evidence-form .errorlist")
    assert "checked by content" in page.inner_text("#evidence-form")
    page.set_input_files(
        "#id_file",
        files=[{"name": "consent.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    page.fill("#id_note", "Signed authorisation of the payer")
    page.click("#evidence-form button[type=submit]")
    page.wait_for_selector("#dispute-evidence")
    assert "Signed authorisation" in page.inner_text("#dispute-evidence")

    _admin_login(page, risk.email)
    page.goto(f"/admin/disputes/dispute/{dispute.pk}/change/")
    assert "Open (audited)" in page.content()
    page.click("a[data-transition=accept_evidence]")
    page.fill("#id_reason", "signature matches the payer")
    page.click("input[type=submit][value=Apply]")
    page.wait_for_selector(".messagelist")
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.CLEARED

    _login(page, ready_user.email)
    page.goto(f"/disputes/{dispute.pk}/")
    assert "accepted" in page.inner_text("#dispute-outcome")
    ready_user.balance_account.refresh_from_db()
    assert ready_user.balance_account.standing == Standing.ACTIVE
