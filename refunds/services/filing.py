"""Filing a refund request (R-REF-1 … R-REF-3) and its proof files.

The user files from their pages; a CS agent may file for the user, noting how the
user asked (email, chat, phone) and attaching what the user sent. Either way the
refundable amount is computed by the preview (refunds.selectors.refund_preview) under
the account's lock and leaves each lot's cash in ONE ledger transaction: arrears are
settled from it first, the rest goes to the refund hold, where it can no longer be
consumed (the gateway's authorize and settlement count cash, trial and discount only).
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts import proof_files
from accounts.services import refuse_unverified_email
from billing.micro import ceil_fen, to_micro
from billing.services import refund_holds
from billing.services.settlement import lock_and_settle
from core.money import parse_amount
from core.workflow import record_audit

from ..models import AskedVia, RefundLine, RefundProof, RefundRequest
from ..selectors import refund_preview
from ._common import refuse_standing, tell

FILE_PERM = "refunds.file_refundrequest"
PROOF_PERM = "refunds.view_refund_proof"
MAX_PROOFS = 10


def _check_uploads(proofs):
    proofs = [p for p in (proofs or []) if p]
    if not proofs:
        raise ValidationError(_("Attach at least one proof file."), code="proof_required")
    if len(proofs) > MAX_PROOFS:
        raise ValidationError(
            _("At most %(n)s proof files.") % {"n": MAX_PROOFS}, code="too_many_files"
        )
    return [proof_files.check_document(p) for p in proofs]


def _allocate(preview, gross_micro):
    """Take `gross_micro` from the lots' refundable amounts, oldest lot first."""
    out, left = {}, gross_micro
    for item in preview.lots:
        if left <= 0:
            break
        take = min(item.refundable_micro, left)
        if take > 0:
            out[item.lot_id] = take
            left -= take
    return out


def submit_refund(
    user,
    *,
    proofs,
    amount=None,
    reason="",
    filed_by=None,
    asked_via=AskedVia.PAGES,
) -> RefundRequest:
    """File a refund request for `user` and set its money aside (R-REF-3).

    `amount` (optional, whole fen) asks for part of the refundable amount; without it
    everything refundable now is asked for. `filed_by` is a CS agent filing for the
    user (needs refunds.file_refundrequest and how the user asked). Refused: a
    locked, frozen or terminated account, nothing refundable, more than 2 decimals,
    more than the refundable amount, a missing or wrong proof file.
    """
    filed_by = filed_by or user
    on_behalf = filed_by.pk != user.pk
    if on_behalf:
        if not filed_by.has_perm(FILE_PERM):
            raise PermissionDenied(_("You are not allowed to file refunds for users."))
        if asked_via not in (AskedVia.EMAIL, AskedVia.CHAT, AskedVia.PHONE):
            raise ValidationError(
                _("Say how the user asked for the refund: email, chat or phone."), code="asked_via"
            )
    else:
        asked_via = AskedVia.PAGES
    requested = None
    if amount not in (None, ""):
        requested = to_micro(parse_amount(amount))
    refuse_unverified_email(user)  # issue 13: an unverified address may not act
    uploads = _check_uploads(proofs)
    account = user.balance_account
    with transaction.atomic():
        # the lock order: the balance account row, then its buckets (standing read under it)
        buckets = lock_and_settle([account.pk])[account.pk]
        refuse_standing(buckets.standing)
        preview = refund_preview(account)
        if preview.net_micro <= 0:
            if preview.total_micro > 0:
                raise ValidationError(
                    _(
                        "Everything refundable would go to settle your arrears first; "
                        "nothing is left to refund."
                    ),
                    code="nothing_refundable",
                )
            raise ValidationError(_("Nothing is refundable now."), code="nothing_refundable")
        if requested is not None and requested > preview.net_micro:
            raise ValidationError(
                _("At most %(amount)s CNY can be refunded now.")
                % {"amount": f"{preview.net.amount:.2f}"},
                code="above_refundable",
            )
        # arrears of fractions of a fen take a whole fen of the refund (the rest of that fen
        # stays in the lot's cash), so what is held for a partial amount is that amount
        arrears_fen = ceil_fen(preview.arrears_micro)
        gross = preview.total_micro if requested is None else requested + arrears_fen
        amounts = _allocate(preview, gross)
        used = {item.lot_id: item.discount_used_micro for item in preview.lots}
        channels = {item.lot_id: item.channel for item in preview.lots}
        refund = RefundRequest.objects.create(
            account=account,
            filed_by=filed_by,
            asked_via=asked_via,
            user_reason=(reason or "").strip(),
            requested_micro=requested,
        )
        moved = refund_holds.hold_lots_for_refund(
            account, amounts, idempotency_key=f"refund-request:{refund.pk}"
        )
        RefundLine.objects.bulk_create(
            [
                RefundLine(
                    request=refund,
                    lot_id=lot_id,
                    channel=channels[lot_id],
                    asked_micro=moved["arrears"].get(lot_id, 0) + moved["held"].get(lot_id, 0),
                    arrears_micro=moved["arrears"].get(lot_id, 0),
                    held_micro=moved["held"].get(lot_id, 0),
                    discount_used_micro=used[lot_id],
                    out_request_no=f"RF{refund.pk:08d}L{lot_id:010d}",
                )
                for lot_id in amounts
            ]
        )
        refund.held_micro = sum(moved["held"].values())
        refund.arrears_micro = sum(moved["arrears"].values())
        refund.save(update_fields=["held_micro", "arrears_micro"])
        for checked in uploads:
            _store_proof(refund, checked, filed_by)
        record_audit(
            refund,
            action="submit",
            actor=filed_by,
            to_state=refund.state,
            reason=refund.user_reason,
            asked_via=asked_via,
            held=str(refund.held),
            arrears=str(refund.arrears),
        )
        tell(refund, "refund_submitted", amount=refund.held, arrears=refund.arrears)
    return refund


def _store_proof(refund, checked, actor):
    proof = RefundProof(request=refund, uploaded_by=actor, content_type=checked.content_type)
    proof_files.save(proof.file, checked, stem="proof")
    proof.save()
    return proof


def read_proof(proof, *, actor):
    """Decrypted bytes of a proof file, for staff holding refunds.view_refund_proof; each
    view is audited on the request. Returns (data, content_type, download name)."""
    if actor is None or not actor.has_perm(PROOF_PERM):
        raise PermissionDenied(_("Proof files need the refund-proof permission."))
    data = proof_files.read(proof.file)
    record_audit(proof.request, action="view_proof", actor=actor, proof=proof.pk)
    ext = proof_files.extension(proof.content_type)
    return data, proof.content_type, f"refund-{proof.request_id}-proof-{proof.pk}.{ext}"


def current_preview(account):
    """The preview a request filed now would hold (issue 24 point 3, R-REF-2): pending
    usage is settled first, under the same locks submit_refund takes, so the page never
    promises cash that usage already reported will take. Without pending usage it only
    reads (no lock on a page view)."""
    from billing.selectors import pending_events

    if not pending_events(account, limit=1):
        return refund_preview(account)
    with transaction.atomic():
        lock_and_settle([account.pk])
        return refund_preview(account)


def can_file(account) -> bool:
    """Whether the account's standing lets it file now (for pages; submit decides)."""
    try:
        refuse_standing(account.standing)
    except ValidationError:
        return False
    return True
