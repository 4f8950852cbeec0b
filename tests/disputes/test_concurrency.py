"""The deadline job under concurrency on PostgreSQL (R-DIS-4): two workers with their own
connections at once, and a worker killed halfway (SIGKILL of a real process): exactly one
refund, one debt, one payout each time."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from django.db import connection

from billing.models import LedgerTransaction, TxnKind
from billing.services.dispute_funds import debt_micro, debt_paid
from billing.services.ledger import credit_lot
from disputes.models import DebtCollection, Dispute, DisputeState, PayoutState, RightsHolderPayout
from disputes.services import deadline as clockwork
from disputes.services.deadline import pass_on_debt_paid
from disputes.services.payouts import settle_dispute_payouts
from tests.factories import cny
from tests.ledger.conftest import run_threads
from tests.workers import database_url

from .conftest import (
    after_deadline,
    assert_books_balance,
    consume,
    open_for,
    run_deadline,
    third_party_alipay_topup,
    third_party_bank_topup,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

PASS_ON_UID = "disputes.pass_on_debt_paid"  # disputes/apps.py


def _refunds():
    return LedgerTransaction.objects.filter(kind=TxnKind.DISPUTE_REFUND).count()


def _in_debt_dispute(user, clerk, cs, amount="40.00", consumed="25.00"):
    topup = third_party_bank_topup(user, amount, clerk)
    consume(user.balance_account, consumed)
    return open_for([topup], cs, amount)


def test_two_workers_at_once_give_one_refund_and_one_debt(ready_user, clerk, cs):
    """R-DIS-4: the deadline job run by two workers at the same instant (threads, each
    with its own connection): one refund transaction, one debt, one payout."""
    dispute = _in_debt_dispute(ready_user, clerk, cs)
    at = after_deadline(dispute)
    results, errors = run_threads(2, lambda i: run_deadline(at))
    assert not errors, errors
    assert _refunds() == 1
    assert debt_micro(ready_user.balance_account.pk) == 25_000_000
    assert RightsHolderPayout.objects.count() == 1
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.IN_DEBT and dispute.refunded_micro == 15_000_000
    assert_books_balance()


def test_many_disputes_and_four_workers(ready_user, clerk, cs):
    """R-DIS-4: several due disputes of one account, four workers at once: each refunded
    once, in the lock order (no deadlock)."""
    disputes = [
        open_for([third_party_bank_topup(ready_user, "10.00", clerk)], cs, "10.00")
        for _ in range(3)
    ]
    at = max(after_deadline(d) for d in disputes)
    results, errors = run_threads(4, lambda i: run_deadline(at))
    assert not errors, errors
    assert _refunds() == 3
    assert sum(results) == 3  # each dispute moved by exactly one worker
    assert RightsHolderPayout.objects.count() == 3
    assert set(Dispute.objects.values_list("state", flat=True)) == {DisputeState.SETTLED}
    assert_books_balance()


def test_two_collectors_pass_a_debt_payment_on_once(ready_user, clerk, cs):
    """R-DIS-4 / R-DIS-5: two collection runs at once record a top-up's debt payment once.
    The commit-time pass-on (issue 24) is switched off here, as when its receiver failed
    and left the payment to the `dispute_debts` job: the two jobs race for it."""
    dispute = _in_debt_dispute(ready_user, clerk, cs)
    run_deadline(after_deadline(dispute))
    debt_paid.disconnect(dispatch_uid=PASS_ON_UID)
    try:
        credit_lot(ready_user.balance_account, cny("10.00"), channel="bank", idempotency_key="p1")
    finally:
        debt_paid.connect(pass_on_debt_paid, dispatch_uid=PASS_ON_UID)
    assert DebtCollection.objects.count() == 0  # left to the job
    results, errors = run_threads(2, lambda i: clockwork.collect_debt_payments())
    assert not errors, errors
    assert sorted(results) == [0, 1]
    assert DebtCollection.objects.count() == 1
    dispute.refresh_from_db()
    assert dispute.debt_paid_micro == 10_000_000
    assert_books_balance()


def test_top_up_commit_and_a_collector_at_once_pass_a_debt_payment_on_once(ready_user, clerk, cs):
    """R-DIS-4 / R-DIS-5: a top-up paying dispute debt passes it on when it commits (issue
    24), while the `dispute_debts` job runs at the same instant: recorded once."""
    dispute = _in_debt_dispute(ready_user, clerk, cs)
    run_deadline(after_deadline(dispute))
    payouts_before = RightsHolderPayout.objects.count()

    def work(i):
        if i == 0:
            credit_lot(
                ready_user.balance_account, cny("10.00"), channel="bank", idempotency_key="p1"
            )
            return None
        return clockwork.collect_debt_payments()

    results, errors = run_threads(2, work)
    assert not errors, errors
    clockwork.collect_debt_payments()  # a later run finds nothing left
    assert DebtCollection.objects.count() == 1
    assert RightsHolderPayout.objects.count() == payouts_before + 1
    dispute.refresh_from_db()
    assert dispute.debt_paid_micro == 10_000_000
    assert_books_balance()


def test_a_top_up_passes_its_debt_payment_on_when_it_commits(ready_user, clerk, cs):
    """R-DIS-5: the payment is passed on at the top-up's commit, not at the next job run;
    the job then finds nothing to record (R-DIS-4)."""
    dispute = _in_debt_dispute(ready_user, clerk, cs)
    run_deadline(after_deadline(dispute))
    credit_lot(ready_user.balance_account, cny("10.00"), channel="bank", idempotency_key="p1")
    assert DebtCollection.objects.count() == 1
    assert clockwork.collect_debt_payments() == 0
    dispute.refresh_from_db()
    assert dispute.debt_paid_micro == 10_000_000
    assert_books_balance()


def _worker_env():
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    return env


# A worker that runs the deadline job and stops where it is told: after the ledger move
# inside the dispute's transaction ("halfway"), or after the commit, before Alipay is
# called ("committed"); it says so on stdout and waits to be killed.
WORKER = textwrap.dedent(
    """
    import sys, django
    django.setup()
    from disputes.services import deadline, payouts
    from billing.services import dispute_funds
    stop = sys.argv[2]
    real_refund = dispute_funds.refund_dispute

    def halfway(*args, **kwargs):
        result = real_refund(*args, **kwargs)
        if stop == "halfway":
            print("HALFWAY", flush=True)
            sys.stdin.readline()
        return result

    def committed(payout_id):
        print("COMMITTED", flush=True)
        sys.stdin.readline()

    deadline.dispute_funds.refund_dispute = halfway
    deadline.send_payout = committed
    import datetime
    deadline.refund_due_disputes(datetime.datetime.fromisoformat(sys.argv[1]))
    print("DONE", flush=True)
    """
)


def _kill_worker_at(at, stop):
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", WORKER, at.isoformat(), stop],
        cwd=settings.BASE_DIR,
        env=_worker_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line == stop.upper(), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def test_worker_killed_halfway_then_rerun_gives_one_refund(ready_user, clerk, cs):
    """R-DIS-4: a worker process killed by SIGKILL after writing the refund but before its
    commit leaves nothing (PostgreSQL rolls it back); the next run refunds once."""
    dispute = _in_debt_dispute(ready_user, clerk, cs)
    at = after_deadline(dispute)
    connection.close()  # the worker must see committed rows only
    _kill_worker_at(at, "halfway")
    assert _refunds() == 0
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN and not RightsHolderPayout.objects.exists()
    assert run_deadline(at) == 1
    assert run_deadline(at) == 0
    assert _refunds() == 1
    assert debt_micro(ready_user.balance_account.pk) == 25_000_000
    assert RightsHolderPayout.objects.count() == 1
    assert_books_balance()


def test_worker_killed_before_calling_alipay_pays_once(ready_user, cs, monkeypatch):
    """R-DIS-4: a worker killed after the deadline's commit but before it called Alipay:
    the payout waits as "sending"; the settle job sends it once, with its own
    out_request_no; a re-run of the deadline job moves nothing."""
    from .conftest import FakeAlipay

    fake = FakeAlipay()
    monkeypatch.setattr("disputes.services.payouts.alipay_client", lambda: fake)
    topup = third_party_alipay_topup(ready_user, "30.00")
    dispute = open_for([topup], cs, "30.00")
    at = after_deadline(dispute)
    connection.close()
    _kill_worker_at(at, "committed")
    payout = RightsHolderPayout.objects.get(dispute=dispute)
    assert payout.state == PayoutState.SENDING and payout.attempts == 0
    assert run_deadline(at) == 0
    settle_dispute_payouts(at)
    settle_dispute_payouts(at)
    payout.refresh_from_db()
    assert payout.state == PayoutState.PAID
    assert fake.calls == [("refund", payout.out_request_no, cny("30.00"))]
    assert LedgerTransaction.objects.filter(kind=TxnKind.DISPUTE_PAYOUT).count() == 1
    assert _refunds() == 1
    assert_books_balance()


def test_a_top_up_racing_the_deadline_is_counted_once(ready_user, clerk, cs):
    """R-DIS-3 / R-DIS-4: a top-up crediting while the deadline job runs (threads, own
    connections): whichever commits first, the rights holder's money is whole once: cash
    refunded + debt = disputed, and the top-up pays the debt it finds; books balance."""
    account = ready_user.balance_account
    dispute = _in_debt_dispute(ready_user, clerk, cs, amount="40.00", consumed="40.00")
    at = after_deadline(dispute)

    def work(i):
        if i == 0:
            return run_deadline(at)
        credit_lot(account, cny("30.00"), channel="bank", idempotency_key="race")
        return 0

    results, errors = run_threads(2, work)
    assert not errors, errors
    dispute.refresh_from_db()
    assert dispute.refunded_micro + dispute.debt_micro == 40_000_000
    clockwork.collect_debt_payments()
    dispute.refresh_from_db()
    assert dispute.debt_left_micro == 10_000_000  # 40 owed, 30 came in either way
    assert debt_micro(account.pk) == 10_000_000
    assert_books_balance()
