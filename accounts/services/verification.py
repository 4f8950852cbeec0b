"""Real-name verification, capacity and the audited full views of identity data
(R-ACC-2 … R-ACC-5)."""

from datetime import date, datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.workflow import WorkflowError, apply_transition, record_audit
from notices.services import send_notice

from .. import proof_files
from ..crypto import CONTENT_TYPES
from ..identity import (
    KIND_ENTERPRISE,
    KIND_INDIVIDUAL,
    identity_hash,
    parse_credit_code,
    parse_resident_id,
)
from ..models import (
    User,
    Verification,
    VerificationKind,
    VerificationState,
)
from ._common import refuse_own_case
from .registration import refuse_unverified_email


# ---------------------------------------------------------------- real-name verification
def _lock_identity(identity):
    """Serialise every decision on one identity: lock its verification rows by id.

    Two approvals of the same identity on two accounts then run one after the
    other, and the second sees the first (R-ACC-4). Locking in id order keeps
    concurrent callers from deadlocking.
    """
    list(
        Verification.objects.select_for_update()
        .filter(identity_hash=identity)
        .order_by("id")
        .values_list("id", flat=True)
    )


def _check_identity_free(identity, user):
    """R-ACC-4: an identity may be verified on at most IDENTITY_MAX_ACCOUNTS accounts."""
    others = (
        Verification.objects.filter(identity_hash=identity, state=VerificationState.APPROVED)
        .exclude(user_id=user.pk)
        .values("user_id")
        .distinct()
        .count()
    )
    if others >= settings.IDENTITY_MAX_ACCOUNTS:
        raise ValidationError(
            _(
                "This identity is already verified on another account. Each ID number or credit "
                "code can be verified on only one account; contact customer service if this "
                "is your own account."
            ),
            code="identity_taken",
        )


def submit_verification(
    user,
    *,
    kind,
    legal_name="",
    id_number="",
    phone="",
    company_name="",
    credit_code="",
    legal_representative="",
    licence_file=None,
    today=None,
):
    """Validate and submit a real-name verification for review (R-ACC-2).

    Refused with a ValidationError (and nothing stored) for an invalid ID
    number or birth date, a malformed credit code, a missing/oversized/wrong
    type licence, a pending or approved verification of the same user, or an
    identity already verified elsewhere (R-ACC-4). A credit code failing its
    check character is accepted with `check_digit_warning` for manual review.
    """
    refuse_unverified_email(user)
    fields = {"user": user, "kind": kind, "phone": (phone or "").strip()}
    if kind == VerificationKind.INDIVIDUAL:
        if not (legal_name or "").strip():
            raise ValidationError(_("Please give your legal name."), code="required")
        parsed = parse_resident_id(id_number, today=today)
        fields.update(
            legal_name=legal_name.strip(),
            id_number=parsed.number,
            birth_date=parsed.birth_date,
            identity_hash=identity_hash(KIND_INDIVIDUAL, parsed.number),
        )
    elif kind == VerificationKind.ENTERPRISE:
        if not (company_name or "").strip() or not (legal_representative or "").strip():
            raise ValidationError(
                _("Please give the company name and its legal representative."), code="required"
            )
        code = parse_credit_code(credit_code)
        if licence_file is None:
            raise ValidationError(_("Please upload the business licence."), code="required")
        ext = proof_files.check_document(licence_file).kind
        fields.update(
            company_name=company_name.strip(),
            legal_representative=legal_representative.strip(),
            credit_code=code.code,
            check_digit_warning=not code.check_digit_ok,
            identity_hash=identity_hash(KIND_ENTERPRISE, code.code),
            licence_content_type=CONTENT_TYPES[ext],
        )
    else:
        raise ValidationError(_("Unknown verification kind."), code="invalid_kind")

    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one submission at a time
        open_states = [VerificationState.SUBMITTED, VerificationState.APPROVED]
        current = Verification.objects.filter(user_id=user.pk, state__in=open_states).first()
        if current is not None:
            raise ValidationError(
                _("You already have a verification that is %(state)s."),
                code="verification_open",
                params={"state": current.get_state_display().lower()},
            )
        _lock_identity(fields["identity_hash"])
        _check_identity_free(fields["identity_hash"], user)
        verification = Verification(**fields)
        if licence_file is not None:
            verification.licence_file.save(licence_file.name, licence_file, save=False)
        verification.save()
        return apply_transition(verification, "submit", actor=user, reason="submitted by the user")


def _verification_notice(verification, kind, *, reason=""):
    """The user's notice of a decision, inside the decision's transaction (R-NOT-1)."""
    send_notice(
        user=verification.user,
        kind=kind,
        context={
            "verification_id": verification.pk,
            "state": verification.state,
            "reason": reason,
        },
        dedupe_key=f"verification:{verification.pk}:{verification.state}",
    )


def approve_verification(verification, *, actor=None, reason=""):
    """CS approves a submitted verification (R-ACC-2), if the identity is free (R-ACC-4).

    The identity's part of the decision, with the user's notice, in one
    transaction. Staff approve through topups.services.trials.approve_verification,
    which runs this and grants the trial funds in the same transaction (R-TOP-5):
    the verification's transition map lives there, since money may only move
    downward in the layers.
    """
    refuse_own_case(verification.user_id, actor, gettext_noop("approve the verification"))
    with transaction.atomic():
        _lock_identity(verification.identity_hash)
        _check_identity_free(verification.identity_hash, verification.user)
        verification = apply_transition(
            verification, "approve", actor=actor, reason=reason, reviewer=actor
        )
        _verification_notice(verification, "verification_approved")
    return verification


def reject_verification(verification, *, actor=None, reason=""):
    """CS rejects a submitted verification with a reason the user reads; they may resubmit."""
    refuse_own_case(verification.user_id, actor, gettext_noop("reject the verification"))
    with transaction.atomic():
        verification = apply_transition(
            verification,
            "reject",
            actor=actor,
            reason=reason,
            reviewer=actor,
            rejection_reason=reason,
        )
        _verification_notice(verification, "verification_rejected", reason=reason.strip())
    return verification


def revoke_verification(verification, *, actor=None, reason=""):
    """Withdraw an approved verification (e.g. found false later); the identity is free again."""
    refuse_own_case(verification.user_id, actor, gettext_noop("revoke the verification"))
    with transaction.atomic():
        verification = apply_transition(
            verification, "revoke", actor=actor, reason=reason, reviewer=actor
        )
        _verification_notice(verification, "verification_revoked", reason=reason.strip())
    return verification


# ---------------------------------------------------------------- capacity (R-ACC-3)
ADULT_AGE = 18
EXCEPTION_MIN_AGE = 16


def age_on(birth_date: date, day: date) -> int:
    """Whole years completed on `day` (a 29 February birthday counts on 1 March)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def _local_day(at) -> date:
    if at is None:
        return timezone.localdate()
    if isinstance(at, datetime):
        return timezone.localdate(at) if timezone.is_aware(at) else at.date()
    return at


def has_full_capacity(user, at=None) -> bool:
    """R-ACC-3 (§3.1): may this user act (top up) with full civil capacity at `at`?

    True for an approved enterprise; for an approved individual when 18 or
    older on that day (birth date from the ID number), or 16-18 with the
    own-income exception recorded by staff. False without an approved
    verification: capacity is then not established.
    """
    from ..selectors import approved_verification

    verification = approved_verification(user)
    if verification is None:
        return False
    if verification.kind == VerificationKind.ENTERPRISE:
        return True
    if verification.birth_date is None:
        return False
    age = age_on(verification.birth_date, _local_day(at))
    if age >= ADULT_AGE:
        return True
    return age >= EXCEPTION_MIN_AGE and verification.has_capacity_exception


def record_capacity_exception(verification, *, actor, note, evidence_file, today=None):
    """Staff record that a 16-18 year old lives on their own income, with evidence (R-ACC-3).

    Needs accounts.record_capacity_exception; audited. The evidence file is
    encrypted at rest like any identity document (R-ACC-5).
    """
    if actor is None or not actor.has_perm("accounts.record_capacity_exception"):
        raise PermissionDenied(_("You are not allowed to record a capacity exception."))
    if not (note or "").strip():
        raise ValidationError(_("Describe the evidence of own income."), code="required")
    if evidence_file is None:
        raise ValidationError(_("Attach the evidence of own income."), code="required")
    refuse_own_case(verification.user_id, actor, gettext_noop("record the capacity exception"))
    ext = proof_files.check_document(evidence_file).kind
    with transaction.atomic():
        verification = Verification.objects.select_for_update().get(pk=verification.pk)
        if (
            verification.kind != VerificationKind.INDIVIDUAL
            or verification.state != VerificationState.APPROVED
        ):
            raise WorkflowError(
                _("Only an approved individual verification can carry the exception."),
                code="wrong_state",
            )
        age = age_on(verification.birth_date, today or timezone.localdate())
        if not EXCEPTION_MIN_AGE <= age < ADULT_AGE:
            raise ValidationError(
                _("The own-income exception applies only from 16 to 18 years of age."),
                code="not_applicable",
            )
        verification.capacity_evidence_file.save(evidence_file.name, evidence_file, save=False)
        verification.capacity_evidence_content_type = CONTENT_TYPES[ext]
        verification.capacity_exception_note = note.strip()
        verification.capacity_exception_at = timezone.now()
        verification.capacity_exception_by = actor
        verification.save()
        record_audit(verification, action="record_capacity_exception", actor=actor, reason=note)
    return verification


# ---------------------------------------------------------------- full views (R-ACC-5)
def _require_identity_permission(actor):
    if actor is None or not actor.has_perm("accounts.view_identity_document"):
        raise PermissionDenied(_("You are not allowed to see identity data in full."))


def reveal_identity(verification, *, actor, reason=""):
    """The unmasked data of a verification, for staff with the permission; audited."""
    _require_identity_permission(actor)
    record_audit(verification, action="view_identity", actor=actor, reason=reason)
    if verification.is_individual:
        return {
            "Legal name": verification.legal_name,
            "Resident ID number": verification.id_number,
            "Birth date": verification.birth_date,
        }
    return {
        "Company name": verification.company_name,
        "Unified social credit code": verification.credit_code,
        "Legal representative": verification.legal_representative,
    }


DOCUMENTS = {
    "licence": ("licence_file", "licence_content_type"),
    "evidence": ("capacity_evidence_file", "capacity_evidence_content_type"),
}


def read_document(verification, which, *, actor):
    """Decrypted bytes of a licence / evidence file for staff with the permission; audited.

    The user who uploaded it may download it too (their own file; issue 15).
    Returns (data, content_type, download name); raises FileNotFoundError if absent.
    """
    if actor is None or actor.pk != verification.user_id:
        _require_identity_permission(actor)
    if which not in DOCUMENTS:
        raise FileNotFoundError(which)
    file_attr, type_attr = DOCUMENTS[which]
    field_file = getattr(verification, file_attr)
    if not field_file:
        raise FileNotFoundError(which)
    data = field_file.storage.open_plain(field_file.name)
    record_audit(verification, action=f"download_{which}", actor=actor)
    content_type = getattr(verification, type_attr) or "application/octet-stream"
    ext = {ctype: ext for ext, ctype in CONTENT_TYPES.items()}.get(content_type, "bin")
    return data, content_type, f"verification-{verification.pk}-{which}.{ext}"
