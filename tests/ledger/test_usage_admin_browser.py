"""Usage events in the admin, in Chromium (issue 14): a finance approver settles the
pending backlog with Run-now, then credits back one event with a reason."""

import pytest

from billing.services.ledger import credit_lot
from tests.factories import PASSWORD, StaffFactory, UserFactory, grant

from .conftest import cny


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_run_now_then_credit_back_one_event_in_browser(page):
    """R-USE-5 / R-ADM-2 / R-LED-5: Run-now settles the pending events and says how many;
    the credit-back asks a reason, gives the event's money back once, and the event's
    page then links the credit transaction."""
    from accounts.services import create_api_key
    from billing.models import LedgerTransaction, UsageEvent
    from billing.selectors import balance_summary
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage
    from billing.services.reconcile import reconcile

    owner = UserFactory()
    account = owner.balance_account
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    _key, raw = create_api_key(owner, name="k")
    ref = resolve_api_keys([raw])[raw]
    record_usage([ReportedUsage(f"b-{n}", ref, "gpt-x", 1_000_000) for n in range(3)])
    finance = grant(
        StaffFactory(),
        "billing.view_usageevent",
        "billing.settle_usage",
        "billing.credit_back_usage",
    )

    page.goto("/admin/login/?next=/admin/billing/usageevent/")
    page.fill("input[name=username]", finance.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/billing/usageevent/")
    assert page.locator("#usage-pending").is_visible()
    assert page.locator(".usage-pending").count() == 3
    page.click("#settle-now")
    page.wait_for_selector(".messagelist")
    assert "3" in page.locator(".messagelist").inner_text()
    assert page.locator(".usage-settled").count() == 3
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()

    charge = UsageEvent.objects.get(request_id="b-1")
    page.goto(f"/admin/billing/usageevent/{charge.pk}/change/")
    page.click("#credit-back")
    page.fill("textarea[name=reason]", "the model timed out")
    page.click("#credit-back-submit")
    page.wait_for_selector(".messagelist")
    credit = LedgerTransaction.objects.get(kind="usage_credit")
    assert f"#{credit.pk}" in page.locator(".messagelist").inner_text()
    assert page.locator(f"a[href='/admin/billing/ledgertransaction/{credit.pk}/change/']").count()
    assert balance_summary(account)["available"] == cny("8")
    assert reconcile(account).ok
