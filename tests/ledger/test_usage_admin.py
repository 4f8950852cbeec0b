"""The usage events in the admin (issue 14): each event's state, times, parts and what
paid for it; the pending backlog with a Run-now for finance; the credit-back of one event."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import LedgerTransaction, UsageEvent
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.settlement import charge_usage
from core.models import AuditRecord
from tests.factories import StaffFactory, grant

from .conftest import cny, later, summary

pytestmark = pytest.mark.django_db

LIST = "admin:billing_usageevent_changelist"


def _record(api_key, *request_ids, micro=100_000):
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    record_usage([ReportedUsage(rid, ref, "m", micro) for rid in request_ids])


@pytest.fixture
def finance(db):
    return grant(
        StaffFactory(),
        "billing.view_usageevent",
        "billing.settle_usage",
        "billing.credit_back_usage",
    )


@pytest.fixture
def viewer(db):
    return grant(StaffFactory(), "billing.view_usageevent")


def _ids(response):
    return {c.request_id for c in response.context["cl"].result_list}


def test_state_filter_pending_uses_the_partial_index_condition(client, finance, account, api_key):
    """R-USE-5: the list filters events by state; pending is `transaction_id IS NULL`,
    the condition of the partial index billing_charge_pending."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    charge_usage(account, cny("0.1"), request_id="settled-1", model="m")
    _record(api_key, "pending-1", "pending-2")
    client.force_login(finance)
    with CaptureQueriesContext(connection) as ctx:
        pending = client.get(reverse(LIST), {"state": "pending"})
    assert _ids(pending) == {"pending-1", "pending-2"}
    listing = [
        q["sql"] for q in ctx.captured_queries if '"billing_usageevent"."request_id"' in q["sql"]
    ]
    assert listing and all('"transaction_id" IS NULL' in sql for sql in listing)
    assert _ids(client.get(reverse(LIST), {"state": "settled"})) == {"settled-1"}
    body = client.get(reverse(LIST)).content.decode()
    assert 'class="usage-pending"' in body and 'class="usage-settled"' in body
    assert 'id="usage-pending"' in body and "2 events not settled yet" in body


def test_run_now_settles_the_backlog_and_reports_how_many(client, finance, account, api_key):
    """R-USE-5: the Run-now button (POST with CSRF) settles every pending event and says
    how many; the event then shows its parts."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    _record(api_key, "p-1", "p-2", "p-3")
    client.force_login(finance)
    page = client.get(reverse(LIST)).content.decode()
    assert 'id="settle-now"' in page and "csrfmiddlewaretoken" in page
    response = client.post(reverse("admin:billing_charge_settle"), follow=True)
    assert "Settled 3 pending usage events." in response.content.decode()
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    assert summary(account)["cash"] == cny("4.7").amount
    assert client.get(reverse("admin:billing_charge_settle")).status_code == 405


def test_run_now_needs_its_permission(client, viewer, account, api_key):
    """R-ADM-1: staff without billing.settle_usage get no button and a 403, and nothing
    is settled."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    _record(api_key, "p-1")
    client.force_login(viewer)
    assert 'id="settle-now"' not in client.get(reverse(LIST)).content.decode()
    assert client.post(reverse("admin:billing_charge_settle")).status_code == 403
    assert UsageEvent.objects.get(request_id="p-1").transaction_id is None


def test_run_now_checks_csrf(finance, account, api_key):
    """The Run-now is a POST form guarded by CSRF: a post without the token moves nothing."""
    from django.test import Client

    _record(api_key, "p-1")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(finance)
    assert strict.post(reverse("admin:billing_charge_settle")).status_code == 403
    assert UsageEvent.objects.get(request_id="p-1").transaction_id is None


def test_event_page_shows_times_parts_and_links_to_what_paid(client, finance, account):
    """R-USE-5 (each event's split stays visible): the page shows state, received,
    occurred and settled times, the parts, each grant and lot that paid (linked), the
    ledger transaction and whether it was credited back."""
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    g = grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="g")
    charge = charge_usage(account, cny("1.5"), request_id="shown", model="m")
    client.force_login(finance)
    url = reverse("admin:billing_usageevent_change", args=[charge.pk])
    body = client.get(url).content.decode()
    assert reverse("admin:billing_lot_change", args=[lot.pk]) in body
    assert reverse("admin:billing_grant_change", args=[g.pk]) in body
    assert reverse("admin:billing_ledgertransaction_change", args=[charge.transaction_id]) in body
    for label in ("Received at", "Occurred at", "Settled at", "Credited back", "Settled"):
        assert label.lower() in body.lower(), label
    assert 'id="credit-back"' in body


def test_a_usage_transaction_links_the_events_it_settled(admin_client, account, api_key):
    """R-USE-5: one usage transaction settles several events; its page links the event
    list filtered to it, which shows exactly those events."""
    from billing.services.settlement import run_settler

    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    _record(api_key, "t-1", "t-2")
    run_settler(seconds=0)
    txn = UsageEvent.objects.get(request_id="t-1").transaction_id
    page = admin_client.get(reverse("admin:billing_ledgertransaction_change", args=[txn]))
    link = reverse(LIST) + f"?transaction__id__exact={txn}"
    assert link in page.content.decode()
    assert _ids(admin_client.get(link)) == {"t-1", "t-2"}


def test_credit_back_from_the_admin_asks_a_reason_and_links_the_credit(
    client, admin_client, finance, account
):
    """R-ADM-2 / R-LED-5: the credit-back asks why, credits once (a second try says it
    was done and moves nothing) and the event's page links the credit transaction."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    charge = charge_usage(account, cny("1.5"), request_id="to-credit", model="m")
    client.force_login(finance)
    url = reverse("admin:billing_charge_credit_back", args=[charge.pk])
    form = client.get(url)
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    client.post(url, {"reason": ""})
    assert not LedgerTransaction.objects.filter(kind="usage_credit").exists()
    done = client.post(url, {"reason": "gateway double-billed"}, follow=True)
    credit = LedgerTransaction.objects.get(kind="usage_credit")
    assert f"Credited back in transaction #{credit.pk}." in done.content.decode()
    assert summary(account)["cash"] == cny("5").amount
    page = client.get(reverse("admin:billing_usageevent_change", args=[charge.pk])).content.decode()
    assert reverse("admin:billing_ledgertransaction_change", args=[credit.pk]) in page
    history = admin_client.get(reverse("admin:billing_usageevent_change", args=[charge.pk]))
    assert "gateway double-billed" in history.content.decode()  # the history inline
    again = client.post(url, {"reason": "again"}, follow=True).content.decode()
    assert "already credited back" in again
    assert LedgerTransaction.objects.filter(kind="usage_credit").count() == 1
    assert AuditRecord.objects.filter(action="credit_back").count() == 1


def test_credit_back_refusals_reach_staff(client, finance, viewer, account, api_key):
    """R-ADM-1 / R-ADM-4: without billing.credit_back_usage: 403 and no link; a pending
    event and one's own account are refused with a message; nothing moves."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    charge = charge_usage(account, cny("1"), request_id="c", model="m")
    url = reverse("admin:billing_charge_credit_back", args=[charge.pk])
    client.force_login(viewer)
    page = client.get(reverse("admin:billing_usageevent_change", args=[charge.pk])).content.decode()
    assert 'id="credit-back"' not in page
    assert client.post(url, {"reason": "x"}).status_code == 403
    wrong = grant(StaffFactory(), "billing.view_usageevent", "billing.settle_usage")
    client.force_login(wrong)
    assert client.post(url, {"reason": "x"}).status_code == 403
    _record(api_key, "still-pending")
    pending = UsageEvent.objects.get(request_id="still-pending")
    client.force_login(finance)
    body = client.post(
        reverse("admin:billing_charge_credit_back", args=[pending.pk]),
        {"reason": "x"},
        follow=True,
    ).content.decode()
    assert "settle pending usage first" in body
    own = finance.balance_account
    credit_lot(own, cny("5"), channel="alipay", idempotency_key="own")
    mine = charge_usage(own, cny("1"), request_id="own-call", model="m")
    body = client.post(
        reverse("admin:billing_charge_credit_back", args=[mine.pk]), {"reason": "x"}, follow=True
    ).content.decode()
    assert "your own account" in body
    assert not LedgerTransaction.objects.filter(kind="usage_credit").exists()


# session, user, permissions, pending summary, count, page, the model filter's choices,
# and the planner's estimate of the unfiltered table (pg_class)
CHARGE_LIST_QUERIES = 10


def test_charge_list_queries_do_not_grow(client, finance, account, django_assert_max_num_queries):
    """Issue 15 / R-USE-5: the list with its state column and pending summary runs a
    fixed number of queries, at 2 events as at 22."""
    credit_lot(account, cny("50"), channel="alipay", idempotency_key="lot")
    client.force_login(finance)
    for n in range(2):
        charge_usage(account, cny("0.1"), request_id=f"a-{n}", model="m")
    with django_assert_max_num_queries(CHARGE_LIST_QUERIES):
        assert client.get(reverse(LIST)).status_code == 200
    for n in range(20):
        charge_usage(account, cny("0.1"), request_id=f"b-{n}", model="m")
    with django_assert_max_num_queries(CHARGE_LIST_QUERIES):
        assert client.get(reverse(LIST), {"state": "settled"}).status_code == 200


def test_run_now_stops_at_its_time_limit(client, finance, account, api_key, monkeypatch):
    """A Run-now holds the request at most RUN_NOW_SECONDS (ingestion may never let the
    backlog reach zero): past the limit it stops after the chunk in hand and reports it."""
    from billing import admin as billing_admin

    credit_lot(account, cny("5"), channel="alipay", idempotency_key="lot")
    _record(api_key, "p-1", "p-2")
    monkeypatch.setattr(billing_admin, "RUN_NOW_SECONDS", -1)
    monkeypatch.setattr("billing.services.settlement.chunk_size", lambda: 1)
    client.force_login(finance)
    response = client.post(reverse("admin:billing_charge_settle"), follow=True)
    assert "Settled 1 pending usage event." in response.content.decode()
    assert UsageEvent.objects.filter(transaction__isnull=True).count() == 1
