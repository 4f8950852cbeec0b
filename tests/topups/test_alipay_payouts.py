"""The one Alipay payout loop (topups.alipay_payouts) refund lines and dispute payouts
share (R-REF-6, R-DIS-4): what paid, refused and unknown mean, against an in-memory
book and a scripted client (no database)."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from djmoney.money import Money

from topups import alipay_payouts
from topups.alipay_payouts import DONE, RETRY, WAIT, Refund


@dataclass
class Answer:
    ok: bool
    fund_change: bool
    code: str = "10000"
    sub_code: str = ""
    message: str = "Success"
    refund_amount: Decimal | None = None
    raw: dict = field(default_factory=dict)


class Client:
    class AlipayUnavailable(Exception):
        pass

    def __init__(self, refunds=(), queries=()):
        self.refunds, self.queries, self.calls = list(refunds), list(queries), []

    def _next(self, script, default):
        item = script.pop(0) if script else default
        if isinstance(item, Exception):
            raise item
        return item

    def request_refund(self, **kwargs):
        self.calls.append(("refund", kwargs["out_request_no"]))
        return self._next(self.refunds, Answer(True, True))

    def query_refund(self, **kwargs):
        self.calls.append(("query", kwargs["out_request_no"]))
        return self._next(self.queries, Answer(True, False))


class Book:
    """One payout kept in memory: its state and every call recorded."""

    def __init__(self, amount="9.00"):
        self.state, self.calls, self.why, self.sent_at = "sending", [], "", None
        self.amount = Money(Decimal(amount), "CNY")

    def refund_for(self, payout_id):
        if self.state not in ("sending", "unknown"):
            return None
        return Refund("T1", "2026T1", self.amount, "RQ1", "test")

    def last_sent_at(self, payout_id):
        return self.sent_at

    def never_sent(self, payout_id):
        return not any(c.operation == "refund" for c in self.calls)

    def record(self, payout_id, call):
        self.calls.append(call)
        if call.outcome in ("unknown", "unconfirmed"):
            self.state = "unknown"

    def paid(self, payout_id):
        self.state = "paid"

    def refused(self, payout_id, why):
        self.state, self.why = "failed", why


@pytest.mark.parametrize(
    "code, sub_code",
    [
        ("40004", "ACQ.SYSTEM_ERROR"),
        ("20000", "aop.ACQ.SYSTEM_ERROR"),
        ("20000", "isp.unknow-error"),
        ("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH"),
    ],
)
def test_system_and_unknown_errors_are_unknown_outcomes_never_refusals(code, sub_code):
    """R-REF-6, R-DIS-4: Alipay asks for ACQ.SYSTEM_ERROR and 20000 to be retried with the
    same parameters (the refund may have been made): the payout is unknown, queried,
    never failed to finance's bank transfer. The rule holds whatever the client."""
    book = Book()
    client = Client(refunds=[Answer(False, False, code=code, sub_code=sub_code)])
    assert alipay_payouts.send(book, 1, client=client) == RETRY
    assert book.state == "unknown" and not book.why
    assert [c.outcome for c in book.calls] == ["unknown", "unconfirmed"]
    assert client.calls == [("refund", "RQ1"), ("query", "RQ1")]


def test_a_definite_refusal_fails_with_the_channels_reason():
    """R-REF-6: a finished trade is refused for good: the book's refusal, with the reason."""
    book = Book()
    refusal = Answer(False, False, code="40004", sub_code="ACQ.TRADE_HAS_FINISHED", message="完结")
    assert alipay_payouts.send(book, 1, client=Client(refunds=[refusal])) == DONE
    assert book.state == "failed" and book.why == "ACQ.TRADE_HAS_FINISHED: 完结"


def test_a_query_confirms_only_the_exact_amount():
    """R-REF-6: a query's refund amount is compared exactly: 9.0000001 is not 9.00 (a
    scaled integer truncated it to a match before), so nothing is booked."""
    book = Book("9.00")
    near = Answer(True, True, refund_amount=Decimal("9.0000001"))
    assert alipay_payouts.query(book, 1, client=Client(queries=[near])) == RETRY
    assert book.state == "unknown"
    exact = Answer(True, True, refund_amount=Decimal("9.00"))
    assert alipay_payouts.query(book, 1, client=Client(queries=[exact])) == DONE
    assert book.state == "paid"


def test_an_amount_that_is_not_whole_fen_is_refused_before_sending():
    """R-LED-3: Alipay refunds whole fen; a payout of 4.005 is never sent (nothing to
    retry), it goes to finance with the reason."""
    book = Book("4.005")
    client = Client()
    assert alipay_payouts.send(book, 1, client=client) == DONE
    assert client.calls == [] and book.state == "failed" and "whole fen" in book.why


def test_a_payout_sent_less_than_three_seconds_ago_waits():
    """Alipay asks for 3 s between two refunds of one trade."""
    book = Book()
    now = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)
    book.sent_at = now - datetime.timedelta(seconds=1)
    client = Client()
    assert alipay_payouts.send(book, 1, client=client, now=now) == WAIT
    assert client.calls == []


def test_settle_sends_the_never_sent_and_resends_what_alipay_has_no_trace_of():
    """R-REF-6, R-DIS-4: the job's body: never sent → sent; unknown and not confirmed by
    the query → sent again with the same out_request_no."""
    lost = Book()
    assert alipay_payouts.settle(lost, [1], client=Client()) == 1
    assert lost.state == "paid"
    unknown = Book()
    client = Client(refunds=[Client.AlipayUnavailable("timeout")])
    assert alipay_payouts.send(unknown, 1, client=client) == RETRY
    alipay_payouts.settle(unknown, [1], client=client)
    assert unknown.state == "paid"
    assert client.calls == [("refund", "RQ1"), ("query", "RQ1"), ("refund", "RQ1")]
