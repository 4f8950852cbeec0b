"""The one loop that pays money back through an Alipay refund (R-REF-5, R-REF-6,
R-DIS-3, R-DIS-4): send, query, settle. Refund lines (refunds.services.payouts) and
rights-holder payouts (disputes.services.payouts) both run it; each keeps its own rows
and says how through a `PayoutBook`. This module knows no model.

What an answer means, for every caller:

- the refund answers `fund_change` (ok and Y): the money moved → paid;
- a query confirms the refund (ok, and its `refund_amount`, when Alipay gives one,
  equals the payout's amount exactly, compared as decimals) → paid;
- `alipay_refunds.will_never_refund`: a definite refusal (finished or closed trade, past
  the refund window, unknown trade, an amount Alipay will never take …) → refused, and
  the caller leaves the money to a bank transfer by finance;
- anything else is an unknown outcome: no answer (`AlipayUnavailable`), a refund
  accepted without `fund_change`, and every other code, ACQ.SYSTEM_ERROR and 20000
  (`isp.unknow-error`, `aop.ACQ.SYSTEM_ERROR`) first among them. Alipay asks for those
  to be retried with the same parameters or the outcome to be queried: the refund may
  have been made. Calling one a refusal would send finance to pay by bank money Alipay
  may already have paid back.

An amount that can never make a valid request (not CNY, not positive, not whole fen) is
refused before anything is sent.

Retrying is the caller's clock (a Celery task, a job); `settle` is the job's body: a
payout never sent is sent; one of unknown outcome is queried, and sent again with the
SAME `out_request_no` when Alipay has no trace of it (Alipay refunds a request number
once).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from django.utils import timezone
from djmoney.money import Money

from . import alipay_refunds

logger = logging.getLogger(__name__)

# Alipay asks for 3 s between two refunds of one trade.
TRADE_SPACING = timedelta(seconds=3)

DONE, WAIT, RETRY = "done", "wait", "retry"
PAID, REFUSED, UNCONFIRMED, UNKNOWN = "paid", "refused", "unconfirmed", "unknown"


@dataclass(frozen=True)
class Refund:
    """What one payout asks of Alipay; the same on every retry."""

    out_trade_no: str
    trade_no: str
    amount: Money
    out_request_no: str
    reason: str


@dataclass(frozen=True)
class Call:
    """One call about a payout and what came of it, for the caller to record."""

    operation: str  # "refund" or "query"
    sent: dict
    outcome: str  # PAID, REFUSED, UNCONFIRMED or UNKNOWN
    answer: object | None = None  # the client's RefundAnswer, when there was one
    message: str = ""

    @property
    def code(self) -> str:
        return str(getattr(self.answer, "code", "") or "")

    @property
    def sub_code(self) -> str:
        return str(getattr(self.answer, "sub_code", "") or "")

    @property
    def text(self) -> str:
        return str(getattr(self.answer, "message", "") or self.message)

    @property
    def raw(self) -> dict:
        """Alipay's answer node as JSON-safe data ({} without one)."""
        raw = getattr(self.answer, "raw", None) or {}
        return json.loads(json.dumps(raw, default=str))

    @property
    def why(self) -> str:
        """The refusal's reason as finance and the user read it."""
        if self.answer is None:
            return self.message
        return f"{self.sub_code or self.code}: {self.text}".strip(": ")


class PayoutBook(Protocol):
    """What a caller keeps about its payouts. The loop decides; the book records."""

    def refund_for(self, payout_id) -> Refund | None:
        """The refund to send or ask about, or None when there is nothing to do (paid,
        refused, no longer paying)."""

    def last_sent_at(self, payout_id):
        """When this payout's refund was last sent (for the 3 s spacing), or None."""

    def record(self, payout_id, call: Call) -> None:
        """Keep one call; for UNKNOWN and UNCONFIRMED, mark the outcome unknown."""

    def paid(self, payout_id) -> None:
        """The money moved: book it (once)."""

    def refused(self, payout_id, why: str) -> None:
        """Alipay will never refund it: leave it to finance's bank transfer."""

    def never_sent(self, payout_id) -> bool:
        """Queued but never sent (a lost task, a worker killed after the commit)."""


def _sent(refund: Refund, operation: str) -> dict:
    sent = {
        "out_trade_no": refund.out_trade_no,
        "trade_no": refund.trade_no,
        "out_request_no": refund.out_request_no,
    }
    if operation == "refund":
        sent["refund_amount"] = alipay_refunds.amount_text(refund.amount)  # ValueError
    return sent


def _finish(book: PayoutBook, payout_id, call: Call) -> None:
    book.record(payout_id, call)
    if call.outcome == PAID:
        book.paid(payout_id)
    elif call.outcome == REFUSED:
        book.refused(payout_id, call.why)


def confirms(answer, amount: Money) -> bool:
    """Does a query's answer say the money moved, for exactly `amount`? Alipay's
    amount is a Decimal: compared exactly, never through a float or scaled integer."""
    if not answer.ok:
        return False
    if answer.refund_amount is not None:
        return answer.refund_amount == amount.amount
    return bool(answer.fund_change)


def send(book: PayoutBook, payout_id, *, client=None, now=None) -> str:
    """Send one payout's refund. DONE (paid, refused, or nothing to do), WAIT (this
    payout was sent less than 3 s ago) or RETRY (the outcome is unknown: send again
    later with the same out_request_no, or let the job query)."""
    client = client or alipay_refunds
    refund = book.refund_for(payout_id)
    if refund is None:
        return DONE
    now = now or timezone.now()
    last = book.last_sent_at(payout_id)
    if last is not None and now - last < TRADE_SPACING:
        return WAIT
    sent = {}
    try:
        sent = _sent(refund, "refund")
        answer = client.request_refund(
            out_trade_no=refund.out_trade_no,
            trade_no=refund.trade_no,
            amount=refund.amount,
            out_request_no=refund.out_request_no,
            reason=refund.reason,
        )
    except ValueError as exc:  # never a valid request (the client sends nothing)
        _finish(book, payout_id, Call("refund", sent, REFUSED, message=str(exc)))
        return DONE
    except client.AlipayUnavailable as exc:
        _finish(book, payout_id, Call("refund", sent, UNKNOWN, message=str(exc)))
        return RETRY
    if answer.ok and answer.fund_change:
        _finish(book, payout_id, Call("refund", sent, PAID, answer))
        return DONE
    if alipay_refunds.will_never_refund(answer):
        _finish(book, payout_id, Call("refund", sent, REFUSED, answer))
        return DONE
    _finish(book, payout_id, Call("refund", sent, UNCONFIRMED if answer.ok else UNKNOWN, answer))
    return query(book, payout_id, client=client)


def query(book: PayoutBook, payout_id, *, client=None) -> str:
    """Ask Alipay whether a payout's refund moved the money; settle it if it says so.
    DONE, or RETRY when Alipay does not confirm it (no trace, no answer)."""
    client = client or alipay_refunds
    refund = book.refund_for(payout_id)
    if refund is None:
        return DONE
    sent = _sent(refund, "query")
    try:
        answer = client.query_refund(
            out_trade_no=refund.out_trade_no,
            trade_no=refund.trade_no,
            out_request_no=refund.out_request_no,
        )
    except ValueError as exc:  # never a valid request (the client sends nothing)
        _finish(book, payout_id, Call("query", sent, REFUSED, message=str(exc)))
        return DONE
    except client.AlipayUnavailable as exc:
        _finish(book, payout_id, Call("query", sent, UNKNOWN, message=str(exc)))
        return RETRY
    if confirms(answer, refund.amount):
        _finish(book, payout_id, Call("query", sent, PAID, answer))
        return DONE
    if alipay_refunds.will_never_refund(answer):
        _finish(book, payout_id, Call("query", sent, REFUSED, answer))
        return DONE
    _finish(book, payout_id, Call("query", sent, UNCONFIRMED if answer.ok else UNKNOWN, answer))
    return RETRY


def settle(book: PayoutBook, payout_ids, *, client=None, now=None) -> int:
    """The settling job's body for the payouts it picked: one never sent is sent; one of
    unknown outcome is queried and, Alipay having no trace of it, sent again with the
    same out_request_no. One bad payout never stops the batch (it stays as it was).
    Returns how many were looked at."""
    client = client or alipay_refunds
    now = now or timezone.now()
    for payout_id in payout_ids:
        try:
            if book.never_sent(payout_id):
                send(book, payout_id, client=client, now=now)
            elif query(book, payout_id, client=client) == RETRY:
                send(book, payout_id, client=client, now=timezone.now())
        except Exception:  # noqa: BLE001 - logged; the next run tries again
            logger.exception("Alipay payout %s could not be settled", payout_id)
    return len(payout_ids)
