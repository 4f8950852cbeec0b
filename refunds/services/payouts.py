"""Paying an approved refund back through each lot's original channel (R-REF-5, R-REF-6),
and RefundRequest's transition map.

- Alipay lots: `start_payout` queues the Celery task `refunds.pay_out_alipay_line` on
  commit for each line; it runs the Alipay payout loop every caller shares
  (topups.alipay_payouts: what paid, refused and unknown mean) with the line's
  `out_request_no`, the same on every retry. No answer, or an answer that is neither
  money moved nor a definite refusal (ACQ.SYSTEM_ERROR, 20000 …), leaves the outcome
  unknown: the task retries with back-off and the job `settle_refund_payouts` settles
  it by querying. A definite refusal (a finished trade, past the refund window …)
  sends the request to payout_failed with the channel's reason, for finance to pay by
  bank transfer. Alipay asks for 3 s between two refunds of one trade; a lot is
  refunded once, so only a retry of the same refund can come that close, and it waits.
- Bank and manual lots (and refused Alipay ones): finance pays by bank transfer and
  records the reference and date (`record_transfer`).

The money: approval moved it to refunds payable; each line paid moves it out to the
channel's clearing account (billing.services.refund_holds.refund_paid_to_channel, keyed on
the line's out_request_no, so it is paid once).

Locks: the request row, then its lines, then the ledger's own order.
"""

from __future__ import annotations

from datetime import timedelta

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Channel
from billing.services import refund_holds
from core.workflow import WorkflowError, apply_transition, transition_map
from topups import alipay_payouts

from ..models import PayoutAttempt, PayoutState, RefundLine, RefundRequest, RefundState
from ._common import refuse_own_refund, tell
from .decisions import approve_refund, cancel_refund, reject_refund, take_for_review

# A line still "sending" this long after its last word is looked at by the job.
STALE_SENDING = timedelta(minutes=10)
# The job leaves a line alone for this long after any call about it.
RECENT_CALL = timedelta(minutes=1)


def alipay_client():
    """The Alipay refund client (topups/alipay_refunds.py: request_refund, query_refund,
    AlipayUnavailable) the shared loop calls. Tests replace this function."""
    from topups import alipay_refunds

    return alipay_refunds


def _lock(refund):
    return (
        RefundRequest.objects.select_for_update(of=("self",))
        .select_related("account__user")
        .get(pk=refund.pk)
    )


PAYOUT_TASK = "refunds.pay_out_alipay_line"  # refunds/tasks.py, registered at ready()


def _queue(line_id):
    # by name through the task registry: refunds.tasks imports this module, not the reverse
    transaction.on_commit(lambda: current_app.tasks[PAYOUT_TASK].delay(line_id))


def _alipay_ready(line):
    topup = getattr(line.lot, "topup", None)
    return (
        line.channel == Channel.ALIPAY
        and topup is not None
        and bool(topup.trade_no or topup.out_trade_no)
    )


def _finish_if_paid(locked):
    """Move a paying request to paid once every line is paid; tell the user."""
    if locked.state != RefundState.PAYING:
        return locked
    if RefundLine.objects.filter(request=locked).exclude(payout_state=PayoutState.PAID).exists():
        return locked
    locked = apply_transition(locked, "complete", actor=None, reason="every line paid")
    tell(locked, "refund_paid", amount=locked.refunded)
    return locked


def start_payout(refund, *, actor, reason="", **form_data):
    """Finance starts paying an approved request: Alipay lines are sent (on commit),
    bank and manual lines wait for finance's transfer; nothing to pay means paid."""
    refuse_own_refund(refund, actor)
    with transaction.atomic():
        locked = apply_transition(
            _lock(refund), "start_payout", actor=actor, reason=reason or "payout started"
        )
        lines = list(
            RefundLine.objects.select_for_update(of=("self",))
            .select_related("lot__topup")
            .filter(request=locked)
            .order_by("id")
        )
        for line in lines:
            if line.refunded_micro == 0:
                line.payout_state = PayoutState.PAID
            elif _alipay_ready(line):
                line.payout_state = PayoutState.SENDING
                _queue(line.pk)
            else:
                line.payout_state = PayoutState.PENDING
            line.save(update_fields=["payout_state"])
        locked = _finish_if_paid(locked)
    refund.refresh_from_db()
    return locked


def record_transfer(
    refund, *, actor, reason="", bank_reference="", transferred_on=None, **form_data
):
    """Finance paid by bank transfer every line waiting for it (bank and manual lots,
    and Alipay lots the channel refused): reference and date recorded, money out of
    refunds payable. The request is paid once no line is left."""
    refuse_own_refund(refund, actor)
    bank_reference = (bank_reference or "").strip()
    if not bank_reference or transferred_on is None:
        raise ValidationError(
            _("The transfer's bank reference and date are required."), code="required"
        )
    with transaction.atomic():
        locked = _lock(refund)
        if locked.state not in (RefundState.PAYING, RefundState.PAYOUT_FAILED):
            raise WorkflowError(
                f"Cannot record a transfer from state {locked.state!r}.", code="wrong_state"
            )
        lines = list(
            RefundLine.objects.select_for_update(of=("self",))
            .filter(request=locked, payout_state__in=(PayoutState.PENDING, PayoutState.FAILED))
            .order_by("id")
        )
        if not lines:
            raise WorkflowError(
                _("No line of this request waits for a bank transfer."), code="nothing_to_pay"
            )
        now = timezone.now()
        for line in lines:
            refund_holds.refund_paid_to_channel(
                locked.account,
                line.refunded,
                channel=Channel.BANK if line.channel == Channel.ALIPAY else line.channel,
                idempotency_key=line.out_request_no,
                memo=f"Refund by bank transfer {bank_reference}",
                actor=actor,
            )
            line.payout_state = PayoutState.PAID
            line.payout_channel = Channel.BANK if line.channel == Channel.ALIPAY else line.channel
            line.payout_reference = bank_reference[:100]
            line.paid_on = transferred_on
            line.paid_at = now
            line.save(
                update_fields=[
                    "payout_state",
                    "payout_channel",
                    "payout_reference",
                    "paid_on",
                    "paid_at",
                ]
            )
            _mark_topup_refunded(line)
        all_paid = (
            not RefundLine.objects.filter(request=locked)
            .exclude(payout_state=PayoutState.PAID)
            .exists()
        )
        locked = apply_transition(
            locked,
            "record_transfer",
            actor=actor,
            reason=reason or f"bank transfer {bank_reference}",
            all_paid=all_paid,
        )
        if all_paid:
            tell(locked, "refund_paid", amount=locked.refunded)
    refund.refresh_from_db()
    return locked


def retry_payout(refund, *, actor, reason="", **form_data):
    """Finance send the refused Alipay lines again (same out_request_no)."""
    refuse_own_refund(refund, actor)
    with transaction.atomic():
        locked = apply_transition(
            _lock(refund), "retry_payout", actor=actor, reason=reason or "retry"
        )
        for line in (
            RefundLine.objects.select_for_update(of=("self",))
            .select_related("lot__topup")
            .filter(request=locked, payout_state=PayoutState.FAILED)
        ):
            if _alipay_ready(line):
                line.payout_state = PayoutState.SENDING
                line.failure_reason = ""
                line.save(update_fields=["payout_state", "failure_reason"])
                _queue(line.pk)
            else:
                line.payout_state = PayoutState.PENDING
                line.save(update_fields=["payout_state"])
    refund.refresh_from_db()
    return locked


# --- Alipay: one line, by the task or the job (the loop is topups.alipay_payouts) ----------


class _Lines:
    """The refund lines' side of the shared Alipay loop (topups.alipay_payouts.PayoutBook):
    every call is a PayoutAttempt row; paid moves refunds payable to Alipay clearing."""

    def refund_for(self, line_id):
        line = RefundLine.objects.select_related("request", "lot__topup").get(pk=line_id)
        if line.payout_state not in (PayoutState.SENDING, PayoutState.UNKNOWN):
            return None
        if line.request.state != RefundState.PAYING:
            return None
        topup = line.lot.topup
        return alipay_payouts.Refund(
            out_trade_no=topup.out_trade_no,
            trade_no=topup.trade_no,
            amount=line.refunded,
            out_request_no=line.out_request_no,
            reason=f"Refund request #{line.request_id}",
        )

    def last_sent_at(self, line_id):
        return (
            PayoutAttempt.objects.filter(line_id=line_id, operation="refund")
            .order_by("-at")
            .values_list("at", flat=True)
            .first()
        )

    def never_sent(self, line_id):
        return not PayoutAttempt.objects.filter(line_id=line_id).exists()

    def record(self, line_id, call):
        line = RefundLine.objects.only("request_id").get(pk=line_id)
        PayoutAttempt.objects.create(
            request_id=line.request_id,
            line_id=line_id,
            operation=call.operation,
            sent=call.sent,
            outcome=call.outcome,
            code=call.code[:40],
            sub_code=call.sub_code[:80],
            message=call.text[:2000],
            answer=call.raw,
        )
        if call.outcome in (alipay_payouts.UNKNOWN, alipay_payouts.UNCONFIRMED):
            RefundLine.objects.filter(pk=line_id, payout_state=PayoutState.SENDING).update(
                payout_state=PayoutState.UNKNOWN
            )

    def paid(self, line_id):
        with transaction.atomic():
            line = RefundLine.objects.select_related("request").get(pk=line_id)
            locked = _lock(line.request)
            line = (
                RefundLine.objects.select_for_update(of=("self",))
                .select_related("lot__topup")
                .get(pk=line_id)
            )
            if line.payout_state == PayoutState.PAID:
                return
            refund_holds.refund_paid_to_channel(
                locked.account,
                line.refunded,
                channel=Channel.ALIPAY,
                idempotency_key=line.out_request_no,
                memo=f"Alipay refund {line.out_request_no}",
            )
            line.payout_state = PayoutState.PAID
            line.payout_channel = Channel.ALIPAY
            line.paid_at = timezone.now()
            line.paid_on = timezone.localdate()
            line.save(update_fields=["payout_state", "payout_channel", "paid_at", "paid_on"])
            _mark_topup_refunded(line)
            _finish_if_paid(locked)

    def refused(self, line_id, why):
        with transaction.atomic():
            line = RefundLine.objects.select_related("request").get(pk=line_id)
            locked = _lock(line.request)
            line = RefundLine.objects.select_for_update(of=("self",)).get(pk=line_id)
            if line.payout_state == PayoutState.PAID:
                return
            line.payout_state = PayoutState.FAILED
            line.failure_reason = why
            line.save(update_fields=["payout_state", "failure_reason"])
            if locked.state == RefundState.PAYING:
                locked = apply_transition(
                    locked, "fail", actor=None, reason=why, payout_failure=why
                )
                tell(
                    locked,
                    "refund_payout_failed",
                    amount=locked.refunded,
                    reason=why,
                    key_suffix=f":{line.pk}",
                )


LINES = _Lines()


def send_alipay_refund(line_id, *, now=None) -> str:
    """Send one line's Alipay refund (the Celery task's body). Returns "done", "wait"
    (a call on this trade less than 3 s ago) or "retry" (outcome unknown: call again
    with the same out_request_no, or let the job query)."""
    return alipay_payouts.send(LINES, line_id, client=alipay_client(), now=now)


def settle_refund_payouts(now=None, limit=100) -> int:
    """The job's batch: Alipay lines whose outcome is unknown (or still "sending" long
    after their last word) are queried; a refund Alipay has no trace of is sent again
    with the same out_request_no, and a line whose task was lost is sent. A line with a
    call in the last minute is left for the next run, so one run never asks about the
    same line twice. Returns how many lines were looked at (the runner stops at a short
    batch)."""
    from django.db.models import Exists, OuterRef, Q

    now = now or timezone.now()

    def called_since(delta):
        return Exists(PayoutAttempt.objects.filter(line_id=OuterRef("pk"), at__gte=now - delta))

    with transaction.atomic():
        rows = RefundLine.objects.filter(request__state=RefundState.PAYING).filter(
            Q(payout_state=PayoutState.UNKNOWN) & ~called_since(RECENT_CALL)
            | Q(payout_state=PayoutState.SENDING) & ~called_since(STALE_SENDING)
        )
        rows = rows.select_for_update(skip_locked=True, of=("self",))
        ids = list(rows.order_by("id").values_list("pk", flat=True)[:limit])
    return alipay_payouts.settle(LINES, ids, client=alipay_client(), now=now)


def _mark_topup_refunded(line):
    """The top-up of a lot refunded in full becomes 'refunded' (TopUp.mark_refunded)."""
    from topups.models import TopUp, TopUpState

    topup = TopUp.objects.filter(lot_id=line.lot_id, state=TopUpState.PAID).first()
    if topup is not None and line.refunded == topup.lot.amount:
        apply_transition(topup, "mark_refunded", actor=None, reason=f"refund {line.out_request_no}")


# RefundRequest's one map: every staff transition and the service that performs it. The
# system transitions complete and fail have no button (the payout task and job run them).
transition_map(
    RefundRequest,
    {
        "take": take_for_review,
        "approve": approve_refund,
        "reject": reject_refund,
        "cancel": cancel_refund,
        "start_payout": start_payout,
        "record_transfer": record_transfer,
        "retry_payout": retry_payout,
    },
)
