"""Deciding a refund request (R-REF-1, R-REF-3, R-REF-4): take, approve, reject, cancel.

Four eyes: the finance approver is never the agent who reviewed the request (nor
the agent who filed it for the user); the service refuses it with a message staff
read in the admin. Two staff acting on one request at once: every decision locks the
request row first (core.workflow.apply_transition), so exactly one wins and the
other is refused from the state it then reads.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from billing.micro import ceil_fen
from billing.models import Grant, GrantKind, GrantState, Lot, TxnKind
from billing.services import ledger, refund_holds
from billing.services.settlement import lock_and_settle
from core.workflow import WorkflowError, apply_transition

from ..models import RefundLine, RefundRequest
from ..selectors import discount_used_by_lot
from ._common import refuse_own_refund, refuse_standing, tell


def _lock(refund):
    return (
        RefundRequest.objects.select_for_update(of=("self",))
        .select_related("account__user")
        .get(pk=refund.pk)
    )


def take_for_review(refund, *, actor, reason="", **form_data):
    """A CS agent takes a submitted request; they are recorded as its reviewer."""
    refuse_own_refund(refund, actor)
    return apply_transition(
        refund, "take", actor=actor, reason=reason or "taken for review", reviewer=actor
    )


def approve_refund(refund, *, actor, reason="", **form_data):
    """A finance approver approves (four eyes). In one transaction: the held money goes
    to refunds payable, lots closed for good (R-REF-4), the discount grants they earned
    voided (their unused part leaves the balance). The discount the lot's grants paid
    (§8.2, at filing and during the review) leaves the balance in the approval's ledger
    transaction (R-REF-7): from the cash kept back at filing, the rest from the hold;
    arrears run up meanwhile are settled from the hold first."""
    refuse_own_refund(refund, actor)
    with transaction.atomic():
        locked = _lock(refund)
        if actor is not None and actor.pk == locked.reviewer_id:
            raise WorkflowError(
                _(
                    "Four eyes: you reviewed this request, so another finance approver must "
                    "approve it."
                ),
                code="four_eyes",
            )
        if (
            actor is not None
            and actor.pk == locked.filed_by_id
            and locked.filed_by_id != locked.account.user_id
        ):
            raise WorkflowError(
                _(
                    "Four eyes: you filed this request for the user, so another finance "
                    "approver must approve it."
                ),
                code="four_eyes",
            )
        locked = apply_transition(
            locked, "approve", actor=actor, reason=reason or "approved", approver=actor
        )
        # lock order: the request, its lines, then the balance account and its buckets
        lines = list(
            RefundLine.objects.select_for_update(of=("self",)).filter(request=locked).order_by("id")
        )
        account = locked.account
        buckets = lock_and_settle([account.pk])[account.pk]
        refuse_standing(buckets.standing)
        used_now = discount_used_by_lot([line.lot_id for line in lines])
        unheld = dict(
            Lot.objects.filter(pk__in=[line.lot_id for line in lines]).values_list(
                "pk", "remaining_micro"
            )
        )
        payouts, recover = {}, {}
        for line in lines:
            # R-REF-7: all the discount this lot's grants paid leaves the balance: first
            # from the lot's unheld cash (kept back at filing for it), the rest (used during
            # the review, or the kept-back cash since spent) from the hold
            used = used_now.get(line.lot_id, 0)
            from_cash = min(unheld.get(line.lot_id, 0), used)
            from_hold = min(line.held_micro, used - from_cash)
            pay = max(0, line.held_micro - ceil_fen(from_hold))  # refunds are whole fen
            payouts[line.lot_id] = (pay, line.held_micro - pay - from_hold)
            if from_cash or from_hold:
                recover[line.lot_id] = (from_cash, from_hold)
        txn = refund_holds.pay_out_refund_holds(
            account,
            payouts,
            idempotency_key=f"refund-request:{locked.pk}",
            actor=actor,
            recover=recover,
        )
        figures = _figures(txn)
        for line in lines:
            cash_back, arrears = figures.get(line.lot_id, (0, 0))
            from_cash, from_hold = recover.get(line.lot_id, (0, 0))
            cash_back += from_cash  # the cash leg is net of the recovery from unheld cash
            line.released_micro = cash_back
            line.late_arrears_micro = arrears
            line.refunded_micro = line.held_micro - cash_back - arrears - from_hold
            line.approved = True
        RefundLine.objects.bulk_update(
            lines, ["released_micro", "late_arrears_micro", "refunded_micro", "approved"]
        )
        locked.refunded_micro = sum(line.refunded_micro for line in lines)
        locked.save(update_fields=["refunded_micro"])
        why = (
            f"Refund request #{locked.pk} approved: the discount this top-up earned is void (§8.2)"
        )
        for grant in Grant.objects.filter(
            source_lot_id__in=[line.lot_id for line in lines],
            kind=GrantKind.DISCOUNT,
            state__in=(GrantState.ACTIVE, GrantState.USED_UP),
        ).order_by("id"):
            ledger.void_grant(grant, reason=why, actor=actor)
        tell(locked, "refund_approved", amount=locked.refunded)
    refund.refresh_from_db()
    return locked


def _figures(txn):
    """{lot id: (cash returned, arrears settled)} from an approval's postings."""
    out = {}
    if txn is None:
        return out
    assert txn.kind == TxnKind.REFUND
    for lot_id, bucket, micro in txn.postings.values_list("lot_id", "bucket", "amount_micro"):
        if lot_id is None:
            continue
        cash, arrears = out.get(lot_id, (0, 0))
        if bucket == "cash":
            cash += micro
        elif bucket == "arrears":
            arrears += micro
        out[lot_id] = (cash, arrears)
    return out


def _release(locked, *, action):
    for line in (
        RefundLine.objects.select_for_update(of=("self",)).filter(request=locked).order_by("id")
    ):
        if line.held_micro:
            refund_holds.release_refund_hold(
                line.lot,
                line.held,
                idempotency_key=f"refund-request:{locked.pk}:lot:{line.lot_id}:{action}",
            )
            line.released_micro = line.held_micro
            line.save(update_fields=["released_micro"])


def reject_refund(refund, *, actor, reason="", **form_data):
    """Staff reject a request before approval (reason required, sent to the user); the
    held money returns to the lots' cash (R-REF-3)."""
    refuse_own_refund(refund, actor)
    with transaction.atomic():
        locked = apply_transition(
            _lock(refund), "reject", actor=actor, reason=reason, decision_reason=reason or ""
        )
        _release(locked, action="reject")
        tell(locked, "refund_rejected", amount=locked.held, reason=locked.decision_reason)
    refund.refresh_from_db()
    return locked


def cancel_refund(refund, *, actor, reason="", **form_data):
    """The user withdraws a request before approval (or a CS agent does it for them);
    the held money returns to the lots' cash (R-REF-3)."""
    with transaction.atomic():
        locked = apply_transition(
            _lock(refund), "cancel", actor=actor, reason=reason or "cancelled by the user"
        )
        _release(locked, action="cancel")
        tell(locked, "refund_cancelled", amount=locked.held)
    refund.refresh_from_db()
    return locked
