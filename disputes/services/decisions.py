"""Staff decisions on a dispute (R-DIS-2, R-DIS-5): evidence accepted (cleared) or
rejected (stays open, same deadline), the claim withdrawn (cleared), a debt waived by
the rights holder or repaid to them directly (settled, with proof).

Locks: the dispute row, then the account and keys through their transitions (and the
ledger's own order for a debt's end).
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from billing.services import dispute_funds
from core.workflow import WorkflowError, apply_transition, transition_map

from ..models import DEBT_STATES, Dispute, DisputeDebt, FileKind
from ._common import lock_dispute, money_text, refuse_own_dispute, release, tell


def _close(locked, name, *, actor, reason, kind, how, **kwargs):
    locked = apply_transition(locked, name, actor=actor, reason=reason, **kwargs)
    release(locked, actor=actor, reason=f"dispute #{locked.pk}: {name.replace('_', ' ')}")
    tell(locked, kind, how=how)
    return locked


def accept_evidence(dispute, *, actor, reason="", **form_data):
    """A risk officer accepts the evidence of consent: cleared, account and keys unlocked
    unless another lock, freeze or suspension still holds them."""
    refuse_own_dispute(dispute, actor)
    with transaction.atomic():
        locked = lock_dispute(dispute)
        if not locked.files.filter(kind=FileKind.EVIDENCE).exists():
            raise WorkflowError(_("There is no evidence to accept."), code="no_evidence")
        locked = _close(
            locked,
            "accept_evidence",
            actor=actor,
            reason=reason or "evidence accepted",
            kind="dispute_cleared",
            how="evidence",
            decided_by=actor,
        )
    dispute.refresh_from_db()
    return locked


def reject_evidence(dispute, *, actor, reason="", evidence_rejection="", **form_data):
    """A risk officer rejects the evidence with a reason the user reads; the dispute
    stays open with its deadline."""
    refuse_own_dispute(dispute, actor)
    why = (evidence_rejection or reason or "").strip()
    with transaction.atomic():
        locked = apply_transition(
            lock_dispute(dispute),
            "reject_evidence",
            actor=actor,
            reason=why,
            decided_by=actor,
            evidence_rejection=why,
        )
        count = locked.files.filter(kind=FileKind.EVIDENCE).count()
        tell(locked, "dispute_evidence_rejected", key_suffix=f":{count}", reason=why)
    dispute.refresh_from_db()
    return locked


def withdraw(dispute, *, actor, reason="", **form_data):
    """CS record that the rights holder withdrew the claim: cleared (R-DIS-2)."""
    refuse_own_dispute(dispute, actor)
    if not (reason or "").strip():
        raise ValidationError(_("Say how the withdrawal reached us."), code="reason_required")
    with transaction.atomic():
        locked = _close(
            lock_dispute(dispute),
            "withdraw",
            actor=actor,
            reason=reason,
            kind="dispute_cleared",
            how="withdrawn",
            decided_by=actor,
        )
    dispute.refresh_from_db()
    return locked


def _end_debt(dispute, name, *, actor, reason, how):
    refuse_own_dispute(dispute, actor, "end a dispute debt")
    if not (reason or "").strip():
        raise ValidationError(_("A reason is required."), code="reason_required")
    with transaction.atomic():
        locked = lock_dispute(dispute)
        if locked.state not in DEBT_STATES:
            raise WorkflowError(
                _("Cannot %(what)s from state %(state)r.")
                % {"what": name.replace("_", " "), "state": locked.state},
                code="wrong_state",
            )
        proof = locked.files.filter(kind=FileKind.DEBT_PROOF)
        if not proof.exists():
            raise ValidationError(
                _("Attach the proof (the waiver, or the repayment) before recording it."),
                code="proof_required",
            )
        left = locked.debt_left_micro
        if left:
            dispute_funds.end_dispute_debt(
                locked.account,
                left,
                idempotency_key=f"{locked.pk}",
                memo=f"Dispute #{locked.pk}: {how}",
                actor=actor,
            )
        locked = _close(
            locked,
            name,
            actor=actor,
            reason=reason,
            kind="dispute_settled",
            how=how,
            ended_micro=left,
        )
    dispute.refresh_from_db()
    return locked


def waive_debt(dispute, *, actor, reason="", **form_data):
    """CS record, with the proof attached, that the rights holder waived the debt left."""
    return _end_debt(dispute, "waive_debt", actor=actor, reason=reason, how="waived")


def record_direct_repayment(dispute, *, actor, reason="", **form_data):
    """CS record, with the proof attached, that the user repaid the rights holder."""
    return _end_debt(
        dispute, "record_direct_repayment", actor=actor, reason=reason, how="repaid_directly"
    )


DISPUTE_SERVICES = {
    "accept_evidence": accept_evidence,
    "reject_evidence": reject_evidence,
    "withdraw": withdraw,
    "waive_debt": waive_debt,
    "record_direct_repayment": record_direct_repayment,
}
transition_map(Dispute, DISPUTE_SERVICES)
# the debt queue's proxy: the same cases, the same services
transition_map(DisputeDebt, DISPUTE_SERVICES)

__all__ = [
    "accept_evidence",
    "reject_evidence",
    "withdraw",
    "waive_debt",
    "record_direct_repayment",
    "money_text",
]
