"""Payouts through the original channel (R-REF-5, R-REF-6), with a fake Alipay client."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.chart import platform_account_id
from billing.models import AccountKind, Posting
from notices.models import Notice
from ops.services import run_job
from refunds.models import PayoutAttempt, PayoutState, RefundState
from refunds.services.decisions import approve_refund, take_for_review
from refunds.services.filing import submit_refund
from refunds.services.payouts import (
    record_transfer,
    retry_payout,
    send_alipay_refund,
    start_payout,
)

from .conftest import RefundAnswer, alipay_topup, assert_books_balance, bank_topup, proof

pytestmark = pytest.mark.django_db


def _paying(user, cs, finance, queued, django_capture_on_commit_callbacks):
    request = submit_refund(user, proofs=[proof()])
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    with django_capture_on_commit_callbacks(execute=True):
        start_payout(request, actor=finance)
    request.refresh_from_db()
    return request


def _platform(kind, channel=""):
    pk = platform_account_id(kind, channel)
    return sum(Posting.objects.filter(ledger_account_id=pk).values_list("amount_micro", flat=True))


def _age_attempts(minutes):
    from django.db.models import F

    PayoutAttempt.objects.update(at=F("at") - datetime.timedelta(minutes=minutes))


def test_job_sends_a_lost_task_and_resends_when_alipay_has_no_trace(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-6: a line queued but never sent is sent by the job; an unknown outcome that
    Alipay's query does not confirm is sent again with the same out_request_no."""
    alipay_topup(ready_user, "14.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [alipay.AlipayUnavailable("lost")]
    run_job("settle_refund_payouts", triggered_by="manual")  # the task never ran
    line.refresh_from_db()
    assert line.payout_state == PayoutState.UNKNOWN
    _age_attempts(minutes=2)
    alipay.query_script = [RefundAnswer(True, False)]  # no trace of it
    run_job("settle_refund_payouts", triggered_by="manual")
    line.refresh_from_db()
    assert line.payout_state == PayoutState.PAID
    assert [c[0] for c in alipay.calls] == ["refund", "query", "refund"]
    assert {c[1] for c in alipay.calls} == {line.out_request_no}
    assert_books_balance()


def _later(seconds=10):
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


def test_alipay_refund_paid_when_fund_change_r_ref_5(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-5: an Alipay lot is refunded through Alipay with its out_request_no, queued
    on commit; fund_change = Y pays it: refunds payable → Alipay clearing, request paid."""
    topup = alipay_topup(ready_user, "80.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    assert queued == [line.pk] and line.payout_state == PayoutState.SENDING
    assert send_alipay_refund(line.pk) == "done"
    line.refresh_from_db()
    request.refresh_from_db()
    assert alipay.calls == [("refund", line.out_request_no, line.refunded)]
    assert line.payout_state == PayoutState.PAID and request.state == RefundState.PAID
    assert _platform(AccountKind.REFUNDS_PAYABLE) == 0
    topup.refresh_from_db()
    assert topup.state == "refunded"  # the whole top-up came back
    assert Notice.objects.filter(user=ready_user, kind="refund_paid").count() == 1
    assert PayoutAttempt.objects.get(line=line).outcome == "paid"
    assert_books_balance()


def test_fund_change_n_counts_only_once_the_query_confirms_r_ref_6(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-6: fund_change = N is not paid; the query confirming the money moved is."""
    alipay_topup(ready_user, "30.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [RefundAnswer(True, False)]
    alipay.query_script = [RefundAnswer(True, False)]  # not yet
    assert send_alipay_refund(line.pk) == "retry"
    line.refresh_from_db()
    assert line.payout_state == PayoutState.UNKNOWN
    assert _platform(AccountKind.REFUNDS_PAYABLE) == 30_000_000  # still owed
    alipay.query_script = [RefundAnswer(True, True, refund_amount=Decimal("30.00"))]
    run_job("settle_refund_payouts", triggered_by="manual")
    assert [c[0] for c in alipay.calls] == ["refund", "query"]  # a call < 1 min ago: left
    _age_attempts(minutes=2)
    run_job("settle_refund_payouts", triggered_by="manual")
    line.refresh_from_db()
    request.refresh_from_db()
    assert line.payout_state == PayoutState.PAID and request.state == RefundState.PAID
    assert [c[0] for c in alipay.calls] == ["refund", "query", "query"]
    assert_books_balance()


def test_timeout_then_retry_with_the_same_request_number(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-6: no answer leaves the outcome unknown; the retry uses the SAME
    out_request_no, waits 3 s after the last call on the trade, and pays once."""
    alipay_topup(ready_user, "12.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [alipay.AlipayUnavailable("timed out")]
    assert send_alipay_refund(line.pk) == "retry"
    line.refresh_from_db()
    assert line.payout_state == PayoutState.UNKNOWN
    assert send_alipay_refund(line.pk) == "wait"  # within 3 s of the last call
    assert send_alipay_refund(line.pk, now=_later()) == "done"
    numbers = {c[1] for c in alipay.calls if c[0] == "refund"}
    assert numbers == {line.out_request_no}
    line.refresh_from_db()
    assert line.payout_state == PayoutState.PAID
    assert send_alipay_refund(line.pk, now=_later(20)) == "done"  # nothing more is sent
    assert len([c for c in alipay.calls if c[0] == "refund"]) == 2
    outcomes = list(PayoutAttempt.objects.order_by("at", "id").values_list("outcome", flat=True))
    assert outcomes == ["unknown", "paid"]
    assert_books_balance()


@pytest.mark.parametrize("sub_code", ["ACQ.TRADE_HAS_FINISHED", "ACQ.TRADE_STATUS_ERROR"])
def test_refused_trade_fails_visibly_and_is_paid_by_bank_r_ref_6(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks, sub_code
):
    """R-REF-6: a trade Alipay will no longer refund goes to payout_failed with the
    channel's reason; finance pays by bank transfer with a reference."""
    alipay_topup(ready_user, "25.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [
        RefundAnswer(False, False, code="40004", sub_code=sub_code, message="trade finished")
    ]
    assert send_alipay_refund(line.pk) == "done"
    request.refresh_from_db()
    line.refresh_from_db()
    assert request.state == RefundState.PAYOUT_FAILED
    assert sub_code in request.payout_failure and sub_code in line.failure_reason
    assert line.payout_state == PayoutState.FAILED
    assert Notice.objects.filter(user=ready_user, kind="refund_payout_failed").count() == 1
    assert _platform(AccountKind.REFUNDS_PAYABLE) == 25_000_000
    with pytest.raises(ValidationError):
        record_transfer(request, actor=finance, bank_reference="", transferred_on=None)
    record_transfer(
        request, actor=finance, bank_reference="B-77", transferred_on=datetime.date(2026, 12, 1)
    )
    request.refresh_from_db()
    line.refresh_from_db()
    assert request.state == RefundState.PAID
    assert line.payout_channel == "bank" and line.payout_reference == "B-77"
    assert _platform(AccountKind.REFUNDS_PAYABLE) == 0
    assert _platform(AccountKind.CLEARING, "bank") == 25_000_000
    assert_books_balance()


def test_retry_after_failure_sends_again(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-1: payout failed → retry → paying, the same request number sent again."""
    alipay_topup(ready_user, "9.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [
        RefundAnswer(False, False, code="40004", sub_code="ACQ.BUYER_ERROR", message="buyer")
    ]
    send_alipay_refund(line.pk)
    request.refresh_from_db()
    assert request.state == RefundState.PAYOUT_FAILED
    with django_capture_on_commit_callbacks(execute=True):
        retry_payout(request, actor=finance, reason="buyer fixed the account")
    request.refresh_from_db()
    assert request.state == RefundState.PAYING and queued[-1] == line.pk
    assert send_alipay_refund(line.pk, now=_later()) == "done"
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert {c[1] for c in alipay.calls} == {line.out_request_no}


def test_system_error_is_retried_not_failed(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-6: a system error is no refusal: the line stays unknown for a retry."""
    alipay_topup(ready_user, "9.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [
        RefundAnswer(False, False, code="20000", sub_code="ACQ.SYSTEM_ERROR", message="busy")
    ]
    assert send_alipay_refund(line.pk) == "retry"
    request.refresh_from_db()
    assert request.state == RefundState.PAYING


def test_a_query_confirms_only_the_lines_exact_amount(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-6, R-LED-3: Alipay's refund amount is compared exactly with the line's: an
    amount a hair above 9.00 (truncated to a match before) is no confirmation; nothing
    is booked until Alipay's figure is the line's."""
    alipay_topup(ready_user, "9.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [RefundAnswer(True, False)]  # accepted, fund_change N
    alipay.query_script = [RefundAnswer(True, True, refund_amount=Decimal("9.0000001"))]
    assert send_alipay_refund(line.pk) == "retry"
    request.refresh_from_db()
    line.refresh_from_db()
    assert request.state == RefundState.PAYING and line.payout_state == PayoutState.UNKNOWN
    assert _platform(AccountKind.CLEARING, "alipay") == -9_000_000  # in, not paid out
    alipay.query_script = [RefundAnswer(True, True, refund_amount=Decimal("9.00"))]
    _age_attempts(2)
    run_job("settle_refund_payouts", triggered_by="manual")
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert _platform(AccountKind.CLEARING, "alipay") == 0
    assert_books_balance()


def test_mixed_lots_pay_per_channel(
    ready_user, clerk, cs, finance, alipay, queued, django_capture_on_commit_callbacks
):
    """R-REF-5: each lot goes back through its own channel: the Alipay lot by Alipay, the
    bank lot by finance's transfer; the request is paid once both are."""
    bank_topup(ready_user, "40.00", clerk)
    alipay_topup(ready_user, "60.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    bank_line, alipay_line = request.lines.order_by("id")
    assert bank_line.payout_state == PayoutState.PENDING and queued == [alipay_line.pk]
    record_transfer(
        request, actor=finance, bank_reference="B-1", transferred_on=datetime.date(2026, 12, 1)
    )
    request.refresh_from_db()
    assert request.state == RefundState.PAYING  # Alipay's part still open
    send_alipay_refund(alipay_line.pk)
    request.refresh_from_db()
    assert request.state == RefundState.PAID and request.refunded.amount == Decimal("100")
    assert _platform(AccountKind.CLEARING, "alipay") == 0  # 60 in, 60 out
    assert_books_balance()


def test_the_task_retries_with_back_off(
    ready_user, cs, finance, alipay, queued, django_capture_on_commit_callbacks, monkeypatch
):
    """R-REF-6: the Celery task retries an unknown outcome with growing back-off."""
    from refunds import tasks

    alipay_topup(ready_user, "5.00")
    request = _paying(ready_user, cs, finance, queued, django_capture_on_commit_callbacks)
    (line,) = request.lines.all()
    alipay.refund_script = [alipay.AlipayUnavailable("reset")]
    countdowns = []

    class Retry(Exception):
        pass

    def fake_retry(*, countdown):
        countdowns.append(countdown)
        return Retry()

    monkeypatch.setattr(tasks.pay_out_alipay_line, "retry", fake_retry)
    with pytest.raises(Retry):
        tasks.pay_out_alipay_line.run(line.pk)
    assert countdowns == [15]


def test_task_and_job_are_registered():
    """R-REF-6: the payout task has its Celery name; the settling job is a scheduled job."""
    from ops.framework import get_job
    from refunds.tasks import pay_out_alipay_line

    assert pay_out_alipay_line.name == "refunds.pay_out_alipay_line"
    spec = get_job("settle_refund_payouts")
    assert spec.schedule == 300 and spec.task_name == "ops.job.settle_refund_payouts"
