"""Reconciliation (R-LED-4), admin (R-ADM-1) and the balance page (R-LED-3) with query pins."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from billing import selectors
from billing.models import LedgerAccount, Lot
from billing.services.authorization import resolve_api_keys
from billing.services.ledger import credit_lot, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.reconcile import reconcile, reconcile_all
from billing.services.settlement import charge_usage, settle_chunk
from tests.factories import PASSWORD, StaffFactory, UserFactory, grant

from .conftest import cny, later


def corrupt_lot(lot):
    with connection.cursor() as cur:  # bypass the services on purpose: simulated drift
        cur.execute(
            "UPDATE billing_lot SET remaining_micro = remaining_micro + 1 WHERE id = %s", [lot.pk]
        )


def test_reconcile_finds_drift_in_cached_balances(account):
    """R-LED-4: a cached balance that differs from its postings is reported."""
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    assert reconcile(account).ok and reconcile_all().ok
    corrupt_lot(lot)
    report = reconcile(account)
    assert not report.ok
    cash = LedgerAccount.objects.get(owner=account, kind="cash")
    assert [(d.what, d.object_id, d.cached - d.ledger) for d in report.drifts] == [
        ("lot_remaining", lot.pk, 1),
        ("cash_vs_lots", cash.pk, -1),  # issue 13: the cash bucket is the sum of the lots
    ]
    assert not reconcile_all(batch_size=1).ok
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE billing_ledgeraccount SET balance_micro = 7"
            " WHERE owner_id = %s AND kind = 'trial'",
            [account.pk],
        )
    assert {d.what for d in reconcile(account).drifts} == {
        "lot_remaining",
        "bucket",
        "cash_vs_lots",
        "grants_vs_bucket",
    }


def test_reconcile_finds_dangling_references(account):
    """R-LED-4: postings of the hot tables carry no database foreign keys, so the
    reconciliation proves that every reference they hold exists."""
    from billing.models import LedgerTransaction

    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    cash = LedgerAccount.objects.get(owner=account, kind="cash")
    txn = LedgerTransaction.objects.create(kind="usage", account=account)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO billing_posting (transaction_id, ledger_account_id, bucket, lot_id,"
            " amount_micro, currency) VALUES (%s, %s, 'cash', 987654, -5, 'CNY'),"
            " (%s, %s, 'cash', NULL, 5, 'CNY')",
            [txn.pk, cash.pk, txn.pk, cash.pk],
        )
    whole = reconcile_all()
    assert "dangling_posting" in {d.what for d in whole.drifts}
    assert "dangling_posting" in {d.what for d in reconcile(account).drifts}


def test_reconcile_command(account, capsys):
    """R-LED-4: `manage.py reconcile_ledger [--account ID]` proves the books, exit 1 on drift."""
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    call_command("reconcile_ledger")
    call_command("reconcile_ledger", "--account", str(account.pk))
    assert "reconciled" in capsys.readouterr().out
    corrupt_lot(lot)
    with pytest.raises(CommandError) as exc:
        call_command("reconcile_ledger", "--account", str(account.pk))
    assert exc.value.returncode == 1
    with pytest.raises(CommandError):
        call_command("reconcile_ledger", "--account", "999999")


RECONCILE_ALL_QUERIES = 21  # per table a MAX(id) and one range pass, one SUM; issue 13 adds 6
# issue 23 adds 3: resource-package holdings (MAX(id), range pass, bucket cross-check)
RECONCILE_ALL_QUERIES += 3


def test_reconcile_all_is_set_based(db, django_assert_max_num_queries):
    """R-LED-4: the whole-ledger proof is a fixed number of GROUP BY queries, not a loop
    per account: with more accounts than that number, even one query per account
    would exceed the limit; and the count does not grow with the accounts."""
    accounts = 2 * RECONCILE_ALL_QUERIES
    for i in range(accounts):
        acct = UserFactory().balance_account
        credit_lot(acct, cny("2"), channel="bank", idempotency_key=f"L{i}")
        charge_usage(acct, cny("0.5"), request_id=f"r{i}", model="m")
    with django_assert_max_num_queries(RECONCILE_ALL_QUERIES) as ctx:
        report = reconcile_all()
    assert report.ok and report.postings_total_micro == 0
    assert len(ctx.captured_queries) < accounts
    # ten more accounts with their own postings: not one query more
    for i in range(10):
        acct = UserFactory().balance_account
        credit_lot(acct, cny("2"), channel="bank", idempotency_key=f"M{i}")
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        assert reconcile_all().ok


def test_batch_is_set_based(db, django_assert_max_num_queries):
    """R-USE-1 / R-USE-5: recording a batch and settling it each cost a fixed number of
    statements, whatever the number of events and accounts."""
    from accounts.services import create_api_key
    from billing.models import UsageEvent

    raws = []
    for i in range(25):
        user = UserFactory()
        credit_lot(user.balance_account, cny("1"), channel="alipay", idempotency_key=f"L{i}")
        raws.append(create_api_key(user, name="k")[1])
    keys = resolve_api_keys(raws)
    events = [ReportedUsage(f"ev{i}", keys[raws[i % 25]], "m", 10_000) for i in range(300)]
    # one INSERT and one replay lookup in one transaction
    with django_assert_max_num_queries(8):
        recorded = record_usage(events)
    assert [r.status for r in recorded] == ["accepted"] * 300
    # one chunk: the accounts' locks, the pending events, lots, one write, one update
    with django_assert_max_num_queries(14):
        assert settle_chunk(1000) == 300
    assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    assert reconcile_all().ok


def test_selectors_query_counts(account, django_assert_num_queries):
    """Selectors read in one query each (no N+1)."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="G")
    for i in range(5):
        charge_usage(account, cny("0.1"), request_id=f"q{i}", model="m")
    with django_assert_num_queries(2):  # the buckets, then authorize's money figures
        selectors.balance_summary(account)
    with django_assert_num_queries(1):
        list(selectors.lots_for(account))
    with django_assert_num_queries(1):
        list(selectors.grants_for(account))
    with django_assert_num_queries(1):
        selectors.pending_events(account)


def test_balance_page_shows_buckets_rounded_with_exact_title(
    client, user, account, django_assert_max_num_queries
):
    """R-LED-3: pages show 2 places rounded half-up with the exact 6-place figure on hover."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    charge_usage(account, cny("1.234567"), request_id="r1", model="gpt-x")
    charge_usage(account, cny("0.000005"), request_id="r2", model="gpt-x")
    client.login(email=user.email, password=PASSWORD)
    with django_assert_max_num_queries(16):  # fixed: see tests/ledger/test_statement.py
        resp = client.get(reverse("billing:balance"))
    html = resp.content.decode()
    assert resp.status_code == 200
    assert '<span class="money" title="¥8.765428">¥8.77</span>' in html  # cash
    assert '<span class="money" title="-¥0.000005">¥0.00</span>' in html  # tiny charge
    assert '<span class="money" title="-¥1.234567">-¥1.23</span>' in html
    assert "gpt-x" in html


def test_balance_page_needs_login_and_shows_only_own_data(client, user, account):
    """A user sees only their own balance; anonymous users are sent to log in."""
    assert client.get(reverse("billing:balance")).status_code == 302
    other = UserFactory()
    credit_lot(other.balance_account, cny("77"), channel="alipay", idempotency_key="other")
    client.login(email=user.email, password=PASSWORD)
    html = client.get(reverse("billing:balance")).content.decode()
    assert "77.00" not in html and "No top-ups yet." in html


def test_threshold_form(client, user, account):
    """R-USE-4: the user sets or clears the threshold; bad input changes nothing."""
    client.login(email=user.email, password=PASSWORD)
    url = reverse("billing:balance")
    for bad in ("1.234", "-5", "abc", "0"):
        resp = client.post(url, {"threshold": bad})
        assert resp.status_code == 200 and "errorlist" in resp.content.decode()
        account.refresh_from_db()
        assert account.low_balance_threshold is None
    assert client.post(url, {"threshold": "50.00"}).status_code == 302
    account.refresh_from_db()
    assert account.low_balance_threshold == cny("50.00")
    client.post(url, {"threshold": ""})
    account.refresh_from_db()
    assert account.low_balance_threshold is None


@pytest.fixture
def finance(db):
    staff = StaffFactory()
    return grant(staff, "billing.view_ledgeraccount", "billing.reconcile_ledger")


def test_admin_ledger_pages(admin_client, account, django_assert_max_num_queries):
    """R-ADM-1: ledger admin lists load with bounded queries and show readonly money."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="G")
    for i in range(5):
        charge_usage(account, cny("0.1"), request_id=f"a{i}", model="m")
    for model in ("ledgertransaction", "ledgeraccount", "lot", "grant", "usageevent"):
        with django_assert_max_num_queries(15):
            resp = admin_client.get(reverse(f"admin:billing_{model}_changelist"))
        assert resp.status_code == 200, model
    txn = account.ledger_transactions.first()
    resp = admin_client.get(reverse("admin:billing_ledgertransaction_change", args=[txn.pk]))
    assert resp.status_code == 200 and "title=" in resp.content.decode()
    resp = admin_client.get(reverse("admin:billing_lot_changelist") + f"?q={account.user.email}")
    assert resp.status_code == 200
    assert admin_client.get(reverse("admin:billing_lot_add")).status_code == 403


def test_admin_reconcile_action(client, finance, account):
    """R-LED-4/R-ADM-1: the admin action reconciles the selected accounts; drift is shown."""
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    client.login(email=finance.email, password=PASSWORD)
    url = reverse("admin:billing_ledgeraccount_changelist")
    ids = list(LedgerAccount.objects.filter(owner=account).values_list("id", flat=True))
    resp = client.post(url, {"action": "reconcile_selected", "_selected_action": ids}, follow=True)
    assert "no drift" in resp.content.decode()
    corrupt_lot(Lot.objects.get(pk=lot.pk))
    resp = client.post(url, {"action": "reconcile_selected", "_selected_action": ids}, follow=True)
    assert "Ledger drift" in resp.content.decode()


def test_admin_reconcile_action_needs_permission(client, account):
    """R-ADM-1: staff without the reconcile permission cannot run it."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    viewer = grant(StaffFactory(), "billing.view_ledgeraccount")
    client.login(email=viewer.email, password=PASSWORD)
    ids = list(LedgerAccount.objects.filter(owner=account).values_list("id", flat=True))
    resp = client.post(
        reverse("admin:billing_ledgeraccount_changelist"),
        {"action": "reconcile_selected", "_selected_action": ids},
        follow=True,
    )
    # The action is not offered to them: Django answers "no action selected", runs nothing.
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "no drift" not in body and "Ledger drift" not in body


def test_admin_void_grants_asks_reason_and_audits(client, account):
    """R-ADM-2: voiding grants from admin asks why, goes through the service (postings
    to promotion expense) and leaves an audit record; staff without the permission
    are refused."""
    from core.models import AuditRecord

    g = grant_funds(account, cny("3"), kind="trial", expires_at=later(), idempotency_key="G")
    url = reverse("admin:billing_grant_changelist")
    viewer = grant(StaffFactory(), "billing.view_grant")
    client.login(email=viewer.email, password=PASSWORD)
    resp = client.post(url, {"action": "void_selected", "_selected_action": [g.pk]})
    assert resp.status_code == 403
    risk = grant(StaffFactory(), "billing.view_grant", "billing.void_grant")
    client.login(email=risk.email, password=PASSWORD)
    resp = client.post(url, {"action": "void_selected", "_selected_action": [g.pk]})
    assert resp.status_code == 200 and "reason" in resp.content.decode()  # asks first
    g.refresh_from_db()
    assert g.state == "active"
    resp = client.post(
        url,
        {"action": "void_selected", "_selected_action": [g.pk], "confirm": "yes", "reason": ""},
    )
    g.refresh_from_db()
    assert g.state == "active"  # no reason, nothing moves
    resp = client.post(
        url,
        {
            "action": "void_selected",
            "_selected_action": [g.pk],
            "confirm": "yes",
            "reason": "duplicate trial",
        },
        follow=True,
    )
    assert "Voided 1 grant" in resp.content.decode()
    g.refresh_from_db()
    assert g.state == "voided" and g.remaining_micro == 0
    audit = AuditRecord.objects.get(action="void", object_id=str(g.pk))
    assert audit.actor == risk and audit.reason == "duplicate trial"
    assert reconcile(account).ok


@pytest.mark.django_db
def test_reconcile_action_offered_only_to_holders_of_its_permission(client):
    """R-ADM-1: a read-only auditor does not see the reconcile action; finance does."""
    from django.urls import reverse

    from tests.factories import StaffFactory, grant

    url = reverse("admin:billing_ledgeraccount_changelist")
    auditor = grant(StaffFactory(), "billing.view_ledgeraccount")
    client.force_login(auditor)
    assert b"reconcile_selected" not in client.get(url).content
    finance = grant(StaffFactory(), "billing.view_ledgeraccount", "billing.reconcile_ledger")
    client.force_login(finance)
    assert b"reconcile_selected" in client.get(url).content
