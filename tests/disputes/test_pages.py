"""The user's dispute pages (R-DIS-1 … R-DIS-5): the list, the countdown, the evidence
upload (bad files refused), the outcome and the debt with how to settle it; another
user's dispute is a 404; the pages speak Chinese; query counts pinned."""

import pytest

from disputes.models import DisputeState

from .conftest import (
    after_deadline,
    consume,
    evidence,
    open_for,
    run_deadline,
    third_party_bank_topup,
)

pytestmark = pytest.mark.django_db


def test_list_and_detail_show_the_countdown(
    client, ready_user, clerk, cs, django_assert_max_num_queries
):
    """R-DIS-1: the user sees the dispute, its deadline (Beijing time) and the days left."""
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    client.force_login(ready_user)
    with django_assert_max_num_queries(12):
        page = client.get("/disputes/").content.decode()
    assert f"/disputes/{dispute.pk}/" in page
    with django_assert_max_num_queries(14):
        response = client.get(f"/disputes/{dispute.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="dispute-days-left"' in body and "days left" in body
    assert (
        dispute.deadline_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).strftime(
            "%Y-%m-%d 23:59"
        )
        in body
    )
    assert 'id="evidence-form"' in body


def test_upload_evidence_from_the_page(client, ready_user, clerk, cs):
    """R-DIS-2: the user uploads evidence from the page; a file that is not PDF/JPEG/PNG
    by content is refused with a message and nothing stored."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    client.force_login(ready_user)
    bad = SimpleUploadedFile("consent.pdf", b"GIF89a not allowed")
    response = client.post(f"/disputes/{dispute.pk}/evidence/", {"file": bad})
    assert response.status_code == 400 and "checked by content" in response.content.decode()
    assert not dispute.files.exists()
    response = client.post(
        f"/disputes/{dispute.pk}/evidence/", {"file": evidence(), "note": "signed letter"}
    )
    assert response.status_code == 302
    assert dispute.files.get().note == "signed letter"


def test_another_users_dispute_is_404(client, ready_user, clerk, cs):
    """R-DIS-2: another user's dispute id is a 404, for the page and the upload."""
    from tests.factories import UserFactory

    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    client.force_login(UserFactory())
    assert client.get(f"/disputes/{dispute.pk}/").status_code == 404
    response = client.post(f"/disputes/{dispute.pk}/evidence/", {"file": evidence()})
    assert response.status_code == 404
    assert not dispute.files.exists()


def test_debt_and_how_to_settle_it(client, ready_user, clerk, cs):
    """R-DIS-3 / R-DIS-5: after the deadline the page shows what was refunded, the debt,
    its due date and how to settle it; no upload form any more."""
    topup = third_party_bank_topup(ready_user, "30.00", clerk)
    consume(ready_user.balance_account, "10.00")
    dispute = open_for([topup], cs, "30.00")
    run_deadline(after_deadline(dispute))
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.IN_DEBT
    client.force_login(ready_user)
    body = client.get(f"/disputes/{dispute.pk}/").content.decode()
    assert 'id="dispute-settle"' in body and 'id="dispute-due"' in body
    assert "20.00" in body and "10.00" in body
    assert 'id="evidence-form"' not in body
    response = client.post(f"/disputes/{dispute.pk}/evidence/", {"file": evidence()})
    assert response.status_code == 400 and not dispute.files.exists()


def test_pages_speak_chinese(client, ready_user, clerk, cs):
    """R-ADM-6: the dispute pages in Simplified Chinese."""
    dispute = open_for([third_party_bank_topup(ready_user, "30.00", clerk)], cs, "30.00")
    ready_user.language = "zh-hans"
    ready_user.save(update_fields=["language"])
    client.force_login(ready_user)
    body = client.get(f"/disputes/{dispute.pk}/").content.decode()
    assert "争议" in body and "上传证明" in body and "Upload evidence" not in body
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        f"/disputes/{dispute.pk}/evidence/", {"file": SimpleUploadedFile("a.pdf", b"GIF89a")}
    )
    assert "只接受" in response.content.decode() or "PDF" in response.content.decode()
