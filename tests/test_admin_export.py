import csv
import io

import pytest
from django.urls import reverse

from accounts.models import BalanceAccount

from .factories import StaffFactory, UserFactory, grant

pytestmark = pytest.mark.django_db


def _export(client, url, ids):
    resp = client.post(url, {"action": "export_as_csv", "_selected_action": [str(i) for i in ids]})
    body = (
        b"".join(resp.streaming_content).decode("utf-8-sig")
        if resp.streaming
        else resp.content.decode("utf-8-sig")
    )
    return resp, list(csv.reader(io.StringIO(body)))


def test_staff_with_view_permission_export_the_list_as_csv(client):
    """R-ADM-3: finance exports a work queue as CSV with the list's own columns."""
    users = [UserFactory(email=f"export{i}@example.com") for i in range(3)]
    staff = grant(StaffFactory(), "accounts.view_balanceaccount")
    client.force_login(staff)
    ids = BalanceAccount.objects.filter(user__in=users).values_list("pk", flat=True)
    resp, rows = _export(client, reverse("admin:accounts_balanceaccount_changelist"), ids)
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/csv")
    assert rows[0][0].lower() == "user"
    assert sorted(r[0] for r in rows[1:]) == [u.email for u in users]
    assert all(r[1] == "Active" or r[1] == "active" for r in rows[1:])


def test_export_needs_the_view_permission(client):
    """R-ADM-1: staff without the view permission get no export."""
    UserFactory()
    staff = StaffFactory()
    client.force_login(staff)
    resp, _ = _export(
        client,
        reverse("admin:accounts_balanceaccount_changelist"),
        BalanceAccount.objects.values_list("pk", flat=True),
    )
    assert resp.status_code == 403


def test_export_neutralises_spreadsheet_formulas():
    """R-ADM-3: a cell starting with = cannot run as a formula in a spreadsheet."""
    from core.admin import _csv_cell

    assert _csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _csv_cell("-12.50") == "-12.50"
