"""Account services: registration, standing, real-name verification, capacity,
identity, API keys and agreement versions (R-ACC-1 … R-ACC-8).

Each function is one transaction; admin buttons and views only call these.
"""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from core.money import parse_amount
from core.workflow import WorkflowError, apply_transition, record_audit, transition_map
from notices.services import send_notice, send_notices_in_bulk

from .crypto import CONTENT_TYPES, validate_upload
from .identity import (
    KIND_ENTERPRISE,
    KIND_INDIVIDUAL,
    identity_hash,
    parse_credit_code,
    parse_resident_id,
)
from .models import (
    AgreementAcceptance,
    AgreementState,
    AgreementVersion,
    ApiKey,
    BalanceAccount,
    User,
    Verification,
    VerificationKind,
    VerificationState,
)


def open_balance_account(user):
    """The user's one balance account, opened if missing (R-ACC-1); idempotent."""
    return BalanceAccount.objects.open_for(user)


@transaction.atomic
def register_user(*, email, password, **profile):
    """Create a user and open their balance account in the same transaction (R-ACC-1).

    This is the public sign-up: the address is unverified (issue 13) unless the caller
    vouches for it (`email_verified_at=...`), and an unverified user is sent the link
    that verifies it, in the same transaction.
    """
    profile.setdefault("email_verified_at", None)
    user = User.objects.create_user(email=email, password=password, **profile)
    if user.email_verified_at is None:
        _send_email_verification(user, timezone.now())
    return user


# ---------------------------------------------------------------- email verification (issue 13)
EMAIL_VERIFICATION_SALT = "accounts.email_verification"
# A new link at most every two minutes and five a day, per user: enough for a lost mail,
# too few to turn the portal into a mail cannon.
RESEND_MIN_INTERVAL = timedelta(minutes=2)
RESEND_MAX_PER_DAY = 5


def email_verification_token(user) -> str:
    """A signed, timestamped token naming the user and the address it verifies."""
    return TimestampSigner(salt=EMAIL_VERIFICATION_SALT).sign_object(
        {"u": user.pk, "e": user.email}
    )


def email_verification_url(user) -> str:
    base = (getattr(settings, "PORTAL_BASE_URL", "") or "").rstrip("/")
    return base + reverse("accounts:verify_email", args=[email_verification_token(user)])


def _send_email_verification(user, now):
    hours = settings.EMAIL_VERIFICATION_MAX_AGE_HOURS
    return send_notice(
        user=user,
        kind="email_verification",
        context={"url": email_verification_url(user), "hours": hours},
        dedupe_key=f"email_verification:{user.pk}:{now.timestamp():.6f}",
    )


def resend_email_verification(user):
    """Send the user a new verification link (issue 13), rate-limited per user.

    Refused (ValidationError, nothing sent): an address already verified
    (`already_verified`), a link sent less than RESEND_MIN_INTERVAL ago (`too_soon`),
    RESEND_MAX_PER_DAY links in the last 24 hours (`too_many`).
    """
    from notices.models import Notice

    now = timezone.now()
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)  # one resend at a time
        if user.email_verified_at is not None:
            raise ValidationError(
                _("Your email address is already verified."), code="already_verified"
            )
        sent = list(
            Notice.objects.filter(
                user_id=user.pk, kind="email_verification", created_at__gt=now - timedelta(days=1)
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)[:RESEND_MAX_PER_DAY]
        )
        if sent and sent[0] > now - RESEND_MIN_INTERVAL:
            raise ValidationError(
                _("A link was sent a moment ago; wait a few minutes before asking again."),
                code="too_soon",
            )
        if len(sent) >= RESEND_MAX_PER_DAY:
            raise ValidationError(
                _("Too many links were sent today; try again tomorrow."), code="too_many"
            )
        return _send_email_verification(user, now)


def verify_email(token):
    """Mark the address the token names as verified (issue 13); idempotent.

    Refused, changing nothing: an expired link (`link_expired`, older than
    settings.EMAIL_VERIFICATION_MAX_AGE_HOURS), a forged or damaged one, or one for an
    address the user no longer has (`link_invalid`).
    """
    signer = TimestampSigner(salt=EMAIL_VERIFICATION_SALT)
    max_age = timedelta(hours=settings.EMAIL_VERIFICATION_MAX_AGE_HOURS)
    try:
        data = signer.unsign_object(token or "", max_age=max_age)
    except SignatureExpired:
        raise ValidationError(
            _("This link has expired. Ask for a new one."), code="link_expired"
        ) from None
    except (BadSignature, ValueError, TypeError):
        raise ValidationError(
            _("This link is not valid. Ask for a new one."), code="link_invalid"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(_("This link is not valid. Ask for a new one."), code="link_invalid")
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=data.get("u")).first()
        if user is None or user.email != data.get("e"):
            raise ValidationError(
                _("This link is not valid. Ask for a new one."), code="link_invalid"
            )
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            record_audit(user, action="verify_email", actor=user)
    return user


def refuse_unverified_email(user):
    """Issue 13: an account whose address is not verified may look but not act.

    The one check top-ups, API keys, refunds, invoices and verification submissions
    call; refused with a ValidationError coded `email_not_verified`.
    """
    if getattr(user, "email_verified_at", None) is None:
        raise ValidationError(
            _("Verify your email address first: open the link we sent you, or ask for a new one."),
            code="email_not_verified",
        )


STANDING_TRANSITIONS = (
    "suspend",
    "reinstate",
    "lock",
    "unlock",
    "freeze",
    "unfreeze",
    "terminate",
)


def change_standing(account, transition_name, *, actor=None, reason="", **kwargs):
    """Move a balance account's standing (R-ACC-8); audited, permission-checked for staff.

    The user is told in the same transaction (R-NOT-1). The staff reason is
    internal and stays out of the notice; CS explain on request.
    """
    if transition_name not in STANDING_TRANSITIONS:
        raise WorkflowError(
            f"Unknown standing transition {transition_name!r}.", code="unknown_transition"
        )
    refuse_own_case(account.user_id, actor, "change the standing of an account")
    with transaction.atomic():
        account = apply_transition(account, transition_name, actor=actor, reason=reason, **kwargs)
        stamp = account.standing_changed_at or timezone.now()
        send_notice(
            user=account.user,
            kind="standing_changed",
            context={
                "standing": account.standing,
                "standing_label": account.get_standing_display(),
                "transition": transition_name,
            },
            dedupe_key=f"standing_changed:{account.pk}:{stamp.timestamp():.6f}",
        )
    return account


def _standing_service(name):
    def service(account, *, actor=None, reason="", **form_data):
        return change_standing(account, name, actor=actor, reason=reason, **form_data)

    service.__name__ = service.__qualname__ = f"{name}_balance_account"
    return service


transition_map(BalanceAccount, {name: _standing_service(name) for name in STANDING_TRANSITIONS})


def set_low_balance_threshold(account, threshold):
    """The user's low-balance threshold (R-USE-4): whole fen, CNY, > 0, or None to
    turn the notice off. Written with a queryset update naming the currency column
    too (django-money's update_fields pitfall), leaving the standing FSM alone."""
    amount = parse_amount(threshold).amount if threshold is not None else None
    with transaction.atomic():
        BalanceAccount.objects.filter(pk=account.pk).update(
            low_balance_threshold=amount, low_balance_threshold_currency="CNY"
        )
    account.low_balance_threshold = Money(amount, "CNY") if amount is not None else None
    return account


@transaction.atomic
def create_api_key(user, *, name):
    """Create a key for the user's account; returns (ApiKey, raw secret shown once)."""
    from .api_keys import new_key_material

    refuse_unverified_email(user)
    raw, prefix, secret_hash = new_key_material()
    key = ApiKey.objects.create(
        account=user.balance_account,
        name=name.strip()[:100] or "key",
        prefix=prefix,
        secret_hash=secret_hash,
    )
    return key, raw


def resolve_api_key(raw_key):
    """The gateway's lookup: the key with its account and user, or None. One query."""
    from .api_keys import hash_secret

    if not raw_key or not isinstance(raw_key, str) or len(raw_key) > 200:
        return None
    return (
        ApiKey.objects.select_related("account", "account__user")
        .filter(secret_hash=hash_secret(raw_key))
        .first()
    )


def revoke_api_key(user, key_id, *, reason="revoked by the user"):
    """The user revokes one of their own keys. Another user's key id is not found
    (ApiKey.DoesNotExist) and nothing changes (R-ACC-6)."""
    key = ApiKey.objects.get(pk=key_id, account__user_id=user.pk)
    return apply_transition(key, "revoke", actor=user, reason=reason)


API_KEY_STAFF_TRANSITIONS = ("lock", "unlock")


def change_api_key_state(key, transition_name, *, actor=None, reason="", **kwargs):
    """Platform lock / unlock of a key (R-ACC-6, §5.2); permission accounts.lock_apikey."""
    if transition_name not in API_KEY_STAFF_TRANSITIONS:
        raise WorkflowError(f"Unknown key transition {transition_name!r}.", code="unknown")
    owner = ApiKey.objects.filter(pk=key.pk).values_list("account__user_id", flat=True).first()
    refuse_own_case(owner, actor, "lock or unlock an API key")
    return apply_transition(key, transition_name, actor=actor, reason=reason)


def lock_api_key(key, *, actor=None, reason="", **form_data):
    return change_api_key_state(key, "lock", actor=actor, reason=reason)


def unlock_api_key(key, *, actor=None, reason="", **form_data):
    return change_api_key_state(key, "unlock", actor=actor, reason=reason)


# Users revoke their own keys from their pages (revoke_api_key); staff lock and unlock.
transition_map(ApiKey, {"lock": lock_api_key, "unlock": unlock_api_key})


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
            "This identity is already verified on another account. Each ID number or credit "
            "code can be verified on only one account; contact customer service if this "
            "is your own account.",
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
            raise ValidationError("Please give your legal name.", code="required")
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
                "Please give the company name and its legal representative.", code="required"
            )
        code = parse_credit_code(credit_code)
        if licence_file is None:
            raise ValidationError("Please upload the business licence.", code="required")
        ext = validate_upload(licence_file)
        fields.update(
            company_name=company_name.strip(),
            legal_representative=legal_representative.strip(),
            credit_code=code.code,
            check_digit_warning=not code.check_digit_ok,
            identity_hash=identity_hash(KIND_ENTERPRISE, code.code),
            licence_content_type=CONTENT_TYPES[ext],
        )
    else:
        raise ValidationError("Unknown verification kind.", code="invalid_kind")

    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one submission at a time
        open_states = [VerificationState.SUBMITTED, VerificationState.APPROVED]
        current = Verification.objects.filter(user_id=user.pk, state__in=open_states).first()
        if current is not None:
            raise ValidationError(
                "You already have a verification that is %(state)s.",
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


def refuse_own_case(user_id, actor, what):
    """R-ADM-4: staff never decide a case of their own (verification, grant, refund).

    `user_id` is the case's beneficiary; `actor` None is the system. Raised as a
    WorkflowError, like any refusal staff read in the admin.
    """
    if actor is not None and getattr(actor, "pk", None) == user_id:
        raise WorkflowError(
            f"You cannot {what} of your own; another staff member must do it.",
            code="own_case",
        )


def approve_verification(verification, *, actor=None, reason=""):
    """CS approves a submitted verification (R-ACC-2), if the identity is free (R-ACC-4).

    The identity's part of the decision, with the user's notice, in one
    transaction. Staff approve through topups.services.trials.approve_verification,
    which runs this and grants the trial funds in the same transaction (R-TOP-5):
    the verification's transition map lives there, since money may only move
    downward in the layers.
    """
    refuse_own_case(verification.user_id, actor, "approve a verification")
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
    refuse_own_case(verification.user_id, actor, "reject a verification")
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
    refuse_own_case(verification.user_id, actor, "revoke a verification")
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
    from .selectors import approved_verification

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
        raise PermissionDenied("You are not allowed to record a capacity exception.")
    if not (note or "").strip():
        raise ValidationError("Describe the evidence of own income.", code="required")
    if evidence_file is None:
        raise ValidationError("Attach the evidence of own income.", code="required")
    refuse_own_case(verification.user_id, actor, "record a capacity exception")
    ext = validate_upload(evidence_file)
    with transaction.atomic():
        verification = Verification.objects.select_for_update().get(pk=verification.pk)
        if (
            verification.kind != VerificationKind.INDIVIDUAL
            or verification.state != VerificationState.APPROVED
        ):
            raise WorkflowError(
                "Only an approved individual verification can carry the exception.",
                code="wrong_state",
            )
        age = age_on(verification.birth_date, today or timezone.localdate())
        if not EXCEPTION_MIN_AGE <= age < ADULT_AGE:
            raise ValidationError(
                "The own-income exception applies only from 16 to 18 years of age.",
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
        raise PermissionDenied("You are not allowed to see identity data in full.")


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


# ---------------------------------------------------------------- agreements (R-ACC-7)
NOTICE_BATCH = 2000


def _announce_agreement(version, *, batch_size=NOTICE_BATCH):
    """One notice per active user for this version, in bounded batches (§11.3).

    Rendered once per language per batch, then bulk-inserted; the dedupe key
    (version + user) makes a replay create nothing new.
    """
    context = {
        "agreement_version_id": version.pk,
        "version": version.version,
        "title": version.title,
        "effective_at": timezone.localtime(version.effective_at),
    }
    last_id, created = 0, 0
    while True:
        rows = list(
            User.objects.filter(is_active=True, pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "language")[:batch_size]
        )
        if not rows:
            return created
        created += send_notices_in_bulk(
            kind="agreement_published",
            context=context,
            recipients=rows,
            dedupe_prefix=f"agreement:{version.pk}",
        )
        last_id = rows[-1][0]


def publish_agreement(version, *, actor=None, reason=""):
    """Publish a version with an effective date in the future; notify every user (R-ACC-7)."""
    if version.effective_at is None or version.effective_at <= timezone.now():
        raise ValidationError(
            "The effective date must be in the future: users are told in advance.",
            code="effective_in_past",
        )
    with transaction.atomic():
        version = apply_transition(
            version, "publish", actor=actor, reason=reason or "published", publisher=actor
        )
        _announce_agreement(version)
    return version


transition_map(AgreementVersion, {"publish": publish_agreement})


def accept_agreement(user, version, *, ip: str) -> AgreementAcceptance:
    """Record the user's acceptance of a published version in force or announced (R-ACC-7).

    Idempotent: accepting the same version again returns the first acceptance.
    """
    from .selectors import agreement_in_force

    if version.state != AgreementState.PUBLISHED:
        raise ValidationError("This agreement version is not published.", code="not_published")
    in_force = agreement_in_force()
    if in_force is not None and version.effective_at < in_force.effective_at:
        raise ValidationError(
            "This agreement version has been replaced by a newer one.", code="superseded"
        )
    with transaction.atomic():
        acceptance, _ = AgreementAcceptance.objects.get_or_create(
            user=user,
            version=version,
            defaults={"ip": ip or None, "accepted_at": timezone.now()},
        )
    return acceptance


API_KEY_USE_GRANULARITY = timedelta(minutes=1)


def mark_api_key_used(key_id, *, at=None):
    """Record when a key was last presented to the gateway (shown on the keys page).

    At most one write per key per minute: a conditional UPDATE, so the gateway's
    hot path does not write on every call.
    """
    from django.db.models import Q

    from .models import ApiKey

    at = at or timezone.now()
    return (
        ApiKey.objects.filter(pk=key_id)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=at - API_KEY_USE_GRANULARITY))
        .update(last_used_at=at)
    )


def set_preferred_language(user, language: str):
    """Remember the language the user picked for pages and notices (R-ADM-6)."""
    codes = dict(settings.LANGUAGES)
    if language not in codes:
        raise ValidationError(f"Unknown language {language!r}.")
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return user
