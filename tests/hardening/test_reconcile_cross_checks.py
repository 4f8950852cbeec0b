"""Reconciliation also proves (issue 13): each account's cash bucket equals the sum of its
lots; every charge matches its postings; no request id lost its charge row."""

import pytest
from django.db import connection

from billing.models import LedgerAccount, UsageEvent
from billing.services.ledger import credit_lot
from billing.services.reconcile import reconcile, reconcile_all
from billing.services.settlement import charge_usage
from tests.factories import UserFactory, cny

pytestmark = pytest.mark.django_db


def _sql(statement, params):
    with connection.cursor() as cur:  # bypass the services on purpose: simulated damage
        # past the ledger's triggers too (a superuser's switch; the portal's role has
        # no such power, tests/hardening/test_db_roles.py)
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute(statement, params)


def _whats(report):
    return {d.what for d in report.drifts}


def test_a_lot_moved_to_another_account_is_found(account):
    """Issue 13: every cache still equals its postings, but account A's cash bucket no
    longer equals A's lots (nor B's): only the cross-check sees it."""
    other = UserFactory().balance_account
    credit_lot(other, cny("1"), channel="alipay", idempotency_key="O")
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    assert reconcile_all().ok
    _sql("UPDATE billing_lot SET account_id = %s WHERE id = %s", [other.pk, lot.pk])
    assert _whats(reconcile(account)) == {"cash_vs_lots"}
    report = reconcile_all()
    cash = LedgerAccount.objects.get(owner=account, kind="cash")
    assert {(d.what, d.object_id) for d in report.drifts} == {
        ("cash_vs_lots", cash.pk),
        ("cash_vs_lots", LedgerAccount.objects.get(owner=other, kind="cash").pk),
    }


def test_a_charge_whose_split_differs_from_its_postings_is_found(account, api_key):
    """Issue 13: a charge row that says cash 0.50 while its postings took 0.40 is drift."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    charge = charge_usage(api_key, cny("1"), request_id="r1", model="m")
    assert reconcile(account).ok
    _sql(
        "UPDATE billing_usageevent SET amount_micro = amount_micro + 1, cash_micro = cash_micro + 1"
        " WHERE id = %s",
        [charge.pk],
    )
    assert _whats(reconcile(account)) == {"charge_vs_postings"}
    assert _whats(reconcile_all()) == {"charge_vs_postings"}
    _sql(  # the right total, but a bucket the postings never touched
        "UPDATE billing_usageevent SET amount_micro = amount_micro - 1,"
        " cash_micro = cash_micro - 2, arrears_micro = arrears_micro + 1 WHERE id = %s",
        [charge.pk],
    )
    assert _whats(reconcile(account)) == {"charge_vs_postings"}


def test_a_usage_transaction_that_lost_its_charge_row_is_found(account, api_key):
    """Issue 13: the charge row holds the request id that makes a replay safe; a usage
    transaction without one would let the gateway charge the same call again."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    charge = charge_usage(api_key, cny("1"), request_id="r1", model="m")
    _sql("DELETE FROM billing_usageevent WHERE id = %s", [charge.pk])
    assert not UsageEvent.objects.exists()
    report = reconcile(account)
    assert _whats(report) == {"usage_without_charge"}
    assert "no charge row" in report.summary()
    assert _whats(reconcile_all()) == {"usage_without_charge"}
