"""Paying the rights holder (R-DIS-3, R-DIS-5) through the disputed trade's channel.

- Alipay top-ups: an Alipay refund of the disputed trade with the payout's own
  `out_request_no`, the same on every retry, through the Alipay payout loop every
  caller shares (topups.alipay_payouts: what paid, refused and unknown mean).
  `fund_change` true means the money moved; otherwise only a query confirming it
  counts. No answer, or an answer that is neither (ACQ.SYSTEM_ERROR, 20000 …), leaves
  the outcome unknown for `settle_dispute_payouts` (query, then send again with the same
  number). A definite refusal leaves the payout to finance's bank transfer.
- Bank and manual top-ups: finance pays by bank transfer and records the reference
  (`record_transfer`, a button in admin).

Each paid payout moves rights-holder payable → clearing[channel], keyed on its
out_request_no (billing.services.dispute_funds.pay_rights_holder), so it is paid once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Channel
from billing.services import dispute_funds
from core.workflow import apply_transition, record_audit, transition_map
from topups import alipay_payouts

from ..models import PayoutState, RightsHolderPayout
from ._common import refuse_own_dispute

logger = logging.getLogger(__name__)

RECENT_CALL = timedelta(minutes=1)
STALE_SENDING = timedelta(minutes=10)


def alipay_client():
    """The Alipay refund client (topups/alipay_refunds.py: request_refund, query_refund,
    AlipayUnavailable) the shared loop calls. Tests replace this function."""
    from topups import alipay_refunds

    return alipay_refunds


def create_payouts(dispute, lines, micro, *, source):
    """Payouts for `micro` passed on to the rights holder, spread over the disputed
    top-ups in order up to each one's share (an Alipay trade is never refunded above
    what was disputed of it). Called inside the dispute's transaction."""
    from django.db.models import Sum

    made = []
    paid = dict(
        RightsHolderPayout.objects.filter(dispute=dispute)
        .values("disputed_topup")
        .annotate(s=Sum("amount_micro"))
        .values_list("disputed_topup", "s")
    )
    left = micro
    for line in lines:
        if not left:
            break
        room = line.amount_micro - (paid.get(line.pk) or 0)
        take = min(room, left)
        if take <= 0:
            continue
        left -= take
        alipay = line.channel == Channel.ALIPAY and bool(
            line.topup.trade_no or line.topup.out_trade_no
        )
        made.append(
            RightsHolderPayout.objects.create(
                dispute=dispute,
                disputed_topup=line,
                source=f"{source}:{line.pk}",
                amount_micro=take,
                channel=line.channel,
                out_request_no=f"DSP{dispute.pk}L{line.pk}{source.replace(':', '')}"[:64],
                state=PayoutState.SENDING if alipay else PayoutState.PENDING,
            )
        )
    if left:
        logger.error("dispute %s: %s micro could not be assigned to a top-up", dispute.pk, left)
    return made


def _pay(payout, channel, *, actor=None, memo=""):
    dispute_funds.pay_rights_holder(
        payout.dispute.account,
        payout.amount_micro,
        channel=channel,
        idempotency_key=payout.out_request_no,
        memo=memo or f"Dispute #{payout.dispute_id}: {payout.out_request_no}",
        actor=actor,
    )


def record_transfer(payout, *, actor, reason="", bank_reference="", transferred_on=None, **_extra):
    """Finance paid the rights holder by bank transfer (bank top-ups, or an Alipay
    refund the channel refused): reference and date recorded, money out of payable."""
    refuse_own_dispute(payout.dispute, actor, "pay a dispute")
    if not (bank_reference or "").strip() or transferred_on is None:
        raise ValidationError(
            _("The transfer's bank reference and date are required."), code="required"
        )
    with transaction.atomic():
        locked = (
            RightsHolderPayout.objects.select_for_update(of=("self",))
            .select_related("dispute__account")
            .get(pk=payout.pk)
        )
        locked = apply_transition(
            locked,
            "record_transfer",
            actor=actor,
            reason=reason or f"bank transfer {bank_reference}",
            bank_reference=bank_reference,
            transferred_on=transferred_on,
            paid_by=actor,
        )
        locked.dispute = (
            RightsHolderPayout.objects.select_related("dispute__account").get(pk=locked.pk).dispute
        )
        channel = Channel.BANK if locked.channel == Channel.ALIPAY else locked.channel
        _pay(locked, channel, actor=actor, memo=f"Bank transfer {bank_reference}"[:200])
    payout.refresh_from_db()
    return locked


transition_map(RightsHolderPayout, {"record_transfer": record_transfer})


# --- Alipay (the loop is topups.alipay_payouts) -------------------------------------------


class _Payouts:
    """The rights-holder payouts' side of the shared Alipay loop
    (topups.alipay_payouts.PayoutBook): the last call's answer and time are kept on the
    row; paid moves rights-holder payable to Alipay clearing."""

    def refund_for(self, payout_id):
        payout = RightsHolderPayout.objects.select_related("disputed_topup__topup").get(
            pk=payout_id
        )
        if payout.state not in (PayoutState.SENDING, PayoutState.UNKNOWN):
            return None
        topup = payout.disputed_topup.topup
        return alipay_payouts.Refund(
            out_trade_no=topup.out_trade_no,
            trade_no=topup.trade_no,
            amount=payout.amount,
            out_request_no=payout.out_request_no,
            reason=f"Dispute #{payout.dispute_id}",
        )

    def last_sent_at(self, payout_id):
        # one refund per payout, sent again only by the job minutes later: no spacing kept
        return None

    def never_sent(self, payout_id):
        return RightsHolderPayout.objects.filter(pk=payout_id, attempts=0).exists()

    def record(self, payout_id, call):
        values = {"last_answer": call.raw or {"message": call.message}}
        if call.operation == "refund":
            values["attempts"] = F("attempts") + 1
        if call.outcome in (alipay_payouts.UNKNOWN, alipay_payouts.UNCONFIRMED):
            values["state"] = PayoutState.UNKNOWN
        RightsHolderPayout.objects.filter(pk=payout_id).update(
            last_call_at=timezone.now(), **values
        )

    def paid(self, payout_id):
        with transaction.atomic():
            payout = (
                RightsHolderPayout.objects.select_for_update(of=("self",))
                .select_related("dispute__account")
                .get(pk=payout_id)
            )
            if payout.state == PayoutState.PAID:
                return
            _pay(payout, Channel.ALIPAY)
            RightsHolderPayout.objects.filter(pk=payout_id).update(
                state=PayoutState.PAID, paid_at=timezone.now(), paid_on=timezone.localdate()
            )
            record_audit(payout.dispute, action="payout_paid", payout=payout.out_request_no)

    def refused(self, payout_id, why):
        RightsHolderPayout.objects.filter(pk=payout_id).exclude(state=PayoutState.PAID).update(
            state=PayoutState.FAILED, failure_reason=why
        )


PAYOUTS = _Payouts()


def send_payout(payout_id) -> str:
    """Send one payout's Alipay refund. "done", or "retry" when the outcome is unknown."""
    return alipay_payouts.send(PAYOUTS, payout_id, client=alipay_client())


def settle_dispute_payouts(now=None, limit=100) -> int:
    """The job's batch: Alipay payouts queued but never sent (a worker killed after the
    deadline's commit), or whose outcome is unknown, are sent / queried; Alipay having no
    trace, they are sent again with the same out_request_no. A payout called in the last
    minute is left for the next run. Returns how many were looked at."""
    from django.db.models import Q

    now = now or timezone.now()
    with transaction.atomic():
        rows = RightsHolderPayout.objects.filter(
            Q(state=PayoutState.SENDING)
            & (Q(last_call_at__isnull=True) | Q(last_call_at__lt=now - STALE_SENDING))
            | Q(state=PayoutState.UNKNOWN, last_call_at__lt=now - RECENT_CALL)
        )
        rows = rows.select_for_update(skip_locked=True, of=("self",))
        ids = list(rows.order_by("id").values_list("pk", flat=True)[:limit])
    return alipay_payouts.settle(PAYOUTS, ids, client=alipay_client(), now=now)
