"""Refund payouts through the real Alipay refund client against the in-portal sandbox
over real HTTP (R-REF-5, R-REF-6): success, a refused trade, and a timeout settled by
the job's query, always with the line's one out_request_no."""

import pytest

from ops.services import run_job
from refunds.models import PayoutAttempt, PayoutState, RefundState
from refunds.services.decisions import approve_refund, take_for_review
from refunds.services.filing import submit_refund
from refunds.services.payouts import send_alipay_refund, start_payout
from topups import sandbox

from .conftest import alipay_topup, assert_books_balance, proof

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal(live_server, settings):
    settings.PORTAL_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def paying(ready_user, cs, finance, queued):
    topup = alipay_topup(ready_user, "66.00")
    request = submit_refund(ready_user, proofs=[proof()])
    take_for_review(request, actor=cs)
    approve_refund(request, actor=finance)
    start_payout(request, actor=finance)
    request.refresh_from_db()
    yield request, topup
    sandbox.reset(topup.out_trade_no)


def test_alipay_refund_over_http_pays_once(portal, paying):
    """R-REF-5: the sandbox refunds the trade with the line's out_request_no; paid."""
    request, topup = paying
    (line,) = request.lines.all()
    assert line.payout_state == PayoutState.SENDING
    assert send_alipay_refund(line.pk) == "done"
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert list(sandbox.refunds_of(topup.out_trade_no)) == [line.out_request_no]
    assert_books_balance()


def test_refused_trade_over_http_fails_visibly(portal, paying):
    """R-REF-6: a finished trade is refused for good: payout failed with the reason."""
    request, topup = paying
    (line,) = request.lines.all()
    sandbox.set_trade_refusal(topup.out_trade_no, "finished")
    send_alipay_refund(line.pk)
    request.refresh_from_db()
    assert request.state == RefundState.PAYOUT_FAILED
    assert "ACQ.TRADE_HAS_FINISHED" in request.payout_failure
    assert sandbox.refunds_of(topup.out_trade_no) == {}


def test_timeout_then_the_job_confirms_by_query(portal, paying, settings):
    """R-REF-6: Alipay refunds but answers too late: unknown; the job's query finds the
    money moved and settles it, without a second refund."""
    request, topup = paying
    (line,) = request.lines.all()
    settings.ALIPAY_HTTP_TIMEOUT = 0.3
    sandbox.fail_next_call(topup.out_trade_no, "timeout", seconds=1.5)
    assert send_alipay_refund(line.pk) == "retry"
    line.refresh_from_db()
    assert line.payout_state == PayoutState.UNKNOWN
    settings.ALIPAY_HTTP_TIMEOUT = 10
    from datetime import timedelta

    from django.db.models import F

    PayoutAttempt.objects.update(at=F("at") - timedelta(minutes=2))  # the job's pause
    run_job("settle_refund_payouts", triggered_by="manual")
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert list(sandbox.refunds_of(topup.out_trade_no)) == [line.out_request_no]
    ops = list(PayoutAttempt.objects.order_by("at", "id").values_list("operation", "outcome"))
    assert ops == [("refund", "unknown"), ("query", "paid")]
    assert_books_balance()


@pytest.mark.parametrize("mode", ["system_error", "unknown_error"])
def test_system_error_over_http_is_retried_not_failed(portal, paying, mode):
    """R-REF-6: 40004 ACQ.SYSTEM_ERROR and 20000 isp.unknow-error are no refusal (the
    shared loop's one rule, topups.alipay_payouts): the line stays unknown, the request
    paying; the job finds no trace and sends again with the same out_request_no."""
    from datetime import timedelta

    from django.db.models import F

    request, topup = paying
    (line,) = request.lines.all()
    sandbox.fail_next_call(topup.out_trade_no, mode)
    assert send_alipay_refund(line.pk) == "retry"
    request.refresh_from_db()
    line.refresh_from_db()
    assert request.state == RefundState.PAYING and line.payout_state == PayoutState.UNKNOWN
    assert sandbox.refunds_of(topup.out_trade_no) == {}
    PayoutAttempt.objects.update(at=F("at") - timedelta(minutes=2))  # the job's pause
    run_job("settle_refund_payouts", triggered_by="manual")
    request.refresh_from_db()
    assert request.state == RefundState.PAID
    assert list(sandbox.refunds_of(topup.out_trade_no)) == [line.out_request_no]
    assert_books_balance()
