"""Rights-holder payouts through the real Alipay refund client against the in-portal
sandbox over real HTTP (R-DIS-3, R-DIS-4), run by the Alipay loop refund payouts share
(topups.alipay_payouts): success, a refused trade, and a system error settled by the
job, always with the payout's one out_request_no."""

import pytest

from disputes.models import PayoutState, RightsHolderPayout
from disputes.services.payouts import settle_dispute_payouts
from topups import sandbox

from .conftest import (
    after_deadline,
    assert_books_balance,
    open_for,
    run_deadline,
    third_party_alipay_topup,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal(live_server, settings):
    settings.PORTAL_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def disputed(ready_user, cs):
    topup = third_party_alipay_topup(ready_user, "25.00")
    dispute = open_for([topup], cs, "25.00")
    yield dispute, topup
    sandbox.reset(topup.out_trade_no)


def _payout(dispute):
    return RightsHolderPayout.objects.get(dispute=dispute)


def test_deadline_refund_over_http_pays_once(portal, disputed):
    """R-DIS-3: the sandbox refunds the disputed trade with the payout's number; paid."""
    dispute, topup = disputed
    run_deadline(after_deadline(dispute))
    payout = _payout(dispute)
    assert payout.state == PayoutState.PAID and payout.attempts == 1
    assert list(sandbox.refunds_of(topup.out_trade_no)) == [payout.out_request_no]
    assert_books_balance()


def test_refused_trade_over_http_goes_to_finance(portal, disputed):
    """R-DIS-3: a trade past its refund window is refused for good: failed, with the
    channel's reason, for finance's bank transfer; nothing refunded."""
    dispute, topup = disputed
    sandbox.set_trade_refusal(topup.out_trade_no, "window")
    run_deadline(after_deadline(dispute))
    payout = _payout(dispute)
    assert payout.state == PayoutState.FAILED
    assert "ACQ.TRADE_STATUS_ERROR" in payout.failure_reason
    assert sandbox.refunds_of(topup.out_trade_no) == {}


@pytest.mark.parametrize("mode", ["system_error", "unknown_error"])
def test_system_error_over_http_is_retried_not_failed(portal, disputed, mode):
    """R-DIS-4: 40004 ACQ.SYSTEM_ERROR and 20000 isp.unknow-error are no refusal: the
    payout stays unknown (not failed to a bank transfer); the settle job finds no trace
    and sends again with the same out_request_no; the money is booked once."""
    dispute, topup = disputed
    sandbox.fail_next_call(topup.out_trade_no, mode)
    run_deadline(after_deadline(dispute))
    payout = _payout(dispute)
    assert payout.state == PayoutState.UNKNOWN and not payout.failure_reason
    assert sandbox.refunds_of(topup.out_trade_no) == {}
    settle_dispute_payouts(after_deadline(dispute, seconds=600))
    payout.refresh_from_db()
    assert payout.state == PayoutState.PAID
    assert list(sandbox.refunds_of(topup.out_trade_no)) == [payout.out_request_no]
    settle_dispute_payouts(after_deadline(dispute, seconds=3600))
    assert list(sandbox.refunds_of(topup.out_trade_no)) == [payout.out_request_no]
    assert_books_balance()
