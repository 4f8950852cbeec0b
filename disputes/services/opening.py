"""Opening a dispute (R-DIS-1) and its files (R-DIS-2, R-DIS-5).

Locks: the disputed top-ups' rows, then the balance account (its standing transition
takes the row FOR UPDATE), then its keys; the ledger is not touched on opening.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts import proof_files
from accounts.models import ApiKey, ApiKeyState, BalanceAccount, Standing
from accounts.services import refuse_own_case
from billing.micro import to_micro
from core.money import parse_amount
from core.workflow import WorkflowError, apply_transition, record_audit
from topups.models import TopUp, TopUpState

from ..models import (
    HOLDING_STATES,
    Dispute,
    DisputedTopUp,
    DisputeFile,
    DisputeState,
    FileKind,
    ReportedVia,
)
from ._common import end_of_day_after, other_holders, tell

FILE_PERM = "disputes.view_dispute_file"
MAX_FILES = 10


def open_dispute(
    topups,
    *,
    actor,
    amount,
    reported_by,
    reported_via,
    rights_holder_name,
    rights_holder_contact="",
    payer_account="",
    report_details="",
    now=None,
):
    """CS opens a dispute on paid third-party top-ups of one account (R-DIS-1).

    In ONE transaction: the dispute and its top-ups, the account locked (when active;
    a frozen or suspended account becomes locked when that lifts, a locked one stays so)
    and every active API key locked, the deadline set to the end of the 30th day after
    opening in Asia/Shanghai, and the user told. Refused: no top-up, a top-up that is not
    paid or not third-party, of another account, already in an open dispute; an amount
    that is not CNY whole fen > 0 or above the top-ups' paid cash; no reporter or
    rights holder. Nothing changes on refusal.
    """
    if actor is None or not actor.has_perm("disputes.open_dispute"):
        raise PermissionDenied(_("You are not allowed to open a dispute."))
    ids = sorted({t.pk if isinstance(t, TopUp) else int(t) for t in (topups or [])})
    if not ids:
        raise ValidationError(_("Choose at least one disputed top-up."), code="no_topups")
    if not (reported_by or "").strip() or not (rights_holder_name or "").strip():
        raise ValidationError(
            _("Who reported it and the rights holder's name are required."), code="required"
        )
    if reported_via not in ReportedVia.values:
        raise ValidationError(_("Say how it was reported."), code="reported_via")
    micro = to_micro(parse_amount(amount))
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            TopUp.objects.select_for_update(of=("self",))
            .select_related("lot")
            .filter(pk__in=ids)
            .order_by("pk")
        )
        if len(rows) != len(ids):
            raise ValidationError(_("A disputed top-up does not exist."), code="no_such_topup")
        accounts = {t.account_id for t in rows}
        if len(accounts) != 1:
            raise ValidationError(
                _("The disputed top-ups must belong to one account."), code="several_accounts"
            )
        for t in rows:
            if t.state != TopUpState.PAID or t.lot_id is None:
                raise ValidationError(
                    _("Top-up %(no)s is not paid: only paid top-ups can be disputed.")
                    % {"no": t.out_trade_no},
                    code="not_paid",
                )
            if not t.third_party:
                raise ValidationError(
                    _("Top-up %(no)s was not paid by a third party.") % {"no": t.out_trade_no},
                    code="not_third_party",
                )
        busy = DisputedTopUp.objects.filter(
            topup_id__in=ids, dispute__state__in=HOLDING_STATES
        ).exists()
        if busy:
            raise ValidationError(
                _("A top-up is already in an open dispute."), code="already_disputed"
            )
        cash = sum(to_micro(t.lot.amount) for t in rows)
        if micro > cash:
            raise ValidationError(
                _("The disputed amount is more than the top-ups' cash."), code="above_cash"
            )
        account = BalanceAccount.objects.select_for_update().get(pk=accounts.pop())
        refuse_own_case(account.user_id, actor, gettext_noop("open the dispute"))
        dispute = Dispute(
            account=account,
            reported_by=reported_by.strip()[:200],
            reported_via=reported_via,
            report_details=(report_details or "").strip(),
            rights_holder_name=rights_holder_name.strip(),
            rights_holder_contact=(rights_holder_contact or "").strip(),
            payer_account=(payer_account or rows[0].payer_account or "").strip(),
            disputed_micro=micro,
            opened_by=actor,
            opened_at=now,
            deadline_at=end_of_day_after(now),
        )
        holders = list(other_holders(dispute))
        # the account: this dispute unlocks it when it ends if it locks it now, shares the
        # lock of another dispute, or waits for a freeze / suspension to lift (R-DIS-5)
        dispute.holds_account = account.standing != Standing.LOCKED or bool(holders)
        shared_keys = {k for d in holders for k in d.locked_key_ids}
        keys = list(
            ApiKey.objects.select_for_update()
            .filter(account=account)
            .exclude(state=ApiKeyState.REVOKED)
            .order_by("pk")
        )
        dispute.locked_key_ids = [
            k.pk for k in keys if k.state == ApiKeyState.ACTIVE or k.pk in shared_keys
        ]
        dispute.save()
        left = micro
        for t in rows:
            share = min(left, to_micro(t.lot.amount))
            left -= share
            DisputedTopUp.objects.create(
                dispute=dispute, topup=t, lot_id=t.lot_id, channel=t.channel, amount_micro=share
            )
        reason = f"dispute #{dispute.pk} opened"
        record_audit(
            dispute,
            action="open",
            actor=actor,
            reason=reason,
            to_state=DisputeState.OPEN,
            topups=ids,
            amount=str(micro),
        )
        if account.standing == Standing.ACTIVE:
            apply_transition(account, "lock", actor=actor, reason=reason, check_permission=False)
        for key in keys:
            if key.state == ApiKeyState.ACTIVE:
                apply_transition(key, "lock", actor=actor, reason=reason, check_permission=False)
        tell(dispute, "dispute_opened")
    return dispute


def _store(dispute, checked, actor, kind, note=""):
    row = DisputeFile(
        dispute=dispute,
        kind=kind,
        uploaded_by=actor,
        content_type=checked.content_type,
        note=(note or "")[:500],
    )
    proof_files.save(row.file, checked, stem=kind)
    row.save()
    return row


def add_evidence(dispute, upload, *, actor, note=""):
    """The user (or CS for them) uploads evidence of the rights holder's prior consent
    while the dispute is open (R-DIS-2): PDF/JPEG/PNG by content, within
    UPLOAD_MAX_BYTES, encrypted at rest."""
    if upload is None:
        raise ValidationError(_("Choose a file."), code="file_required")
    checked = proof_files.check_document(upload)
    with transaction.atomic():
        locked = Dispute.objects.select_for_update().select_related("account").get(pk=dispute.pk)
        is_owner = actor.pk == locked.account.user_id
        if not is_owner and not actor.has_perm("disputes.open_dispute"):
            raise PermissionDenied(_("Only the account's user or CS may add evidence."))
        if locked.state != DisputeState.OPEN:
            raise WorkflowError(
                _("Evidence can only be added while the dispute is open."), code="wrong_state"
            )
        if locked.files.filter(kind=FileKind.EVIDENCE).count() >= MAX_FILES:
            raise ValidationError(
                _("At most %(n)s evidence files.") % {"n": MAX_FILES}, code="too_many_files"
            )
        row = _store(locked, checked, actor, FileKind.EVIDENCE, note)
        record_audit(locked, action="add_evidence", actor=actor, file=row.pk)
    return row


def add_debt_proof(dispute, upload, *, actor, note=""):
    """CS attach the proof that a debt ended (the rights holder's waiver, or the user's
    direct repayment) before recording it (R-DIS-5)."""
    if not actor.has_perm("disputes.end_dispute_debt"):
        raise PermissionDenied(_("You are not allowed to record how a debt ended."))
    if upload is None:
        raise ValidationError(_("Choose a file."), code="file_required")
    checked = proof_files.check_document(upload)
    with transaction.atomic():
        locked = Dispute.objects.select_for_update().get(pk=dispute.pk)
        if locked.state not in (DisputeState.IN_DEBT, DisputeState.ESCALATED):
            raise WorkflowError(_("This dispute has no open debt."), code="wrong_state")
        row = _store(locked, checked, actor, FileKind.DEBT_PROOF, note)
        record_audit(locked, action="add_debt_proof", actor=actor, file=row.pk)
    return row


def read_file(row, *, actor):
    """Decrypted bytes of an evidence or proof file, for staff holding
    disputes.view_dispute_file; each view audited."""
    if not actor.has_perm(FILE_PERM):
        raise PermissionDenied(_("Dispute files need the dispute-file permission."))
    data = proof_files.read(row.file)
    record_audit(row.dispute, action="view_file", actor=actor, file=row.pk)
    return data
