"""Registration, email verification and the saved language (R-ACC-1, issue 13, R-ADM-6)."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from core.workflow import record_audit
from notices.services import send_notice

from ..models import (
    BalanceAccount,
    User,
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
    # issue 24: the notice (which CS, finance, risk and auditors can read) holds no usable
    # link; the email gets a freshly signed one when it is sent (email_verification_body)
    hours = settings.EMAIL_VERIFICATION_MAX_AGE_HOURS
    return send_notice(
        user=user,
        kind="email_verification",
        context={"hours": hours},
        dedupe_key=f"email_verification:{user.pk}:{now.timestamp():.6f}",
    )


def email_verification_body(notice) -> str:
    """The verification email's body with a link signed now (notices' body provider)."""
    from notices.services import render_notice

    user = notice.user
    context = {**(notice.context or {}), "url": email_verification_url(user)}
    return render_notice(notice.kind, context, language=getattr(user, "language", "en"))[1]


def check_email_token(token):
    """The user a verification link names, or ValidationError; changes nothing."""
    return _token_user(token, lock=False)


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
    with transaction.atomic():
        user = _token_user(token, lock=True)
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            record_audit(user, action="verify_email", actor=user)
    return user


def _token_user(token, *, lock):
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
    users = User.objects.select_for_update() if lock else User.objects
    user = users.filter(pk=data.get("u")).first()
    if user is None or user.email != data.get("e"):
        raise ValidationError(_("This link is not valid. Ask for a new one."), code="link_invalid")
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


def set_preferred_language(user, language: str):
    """Remember the language the user picked for pages and notices (R-ADM-6)."""
    codes = dict(settings.LANGUAGES)
    if language not in codes:
        raise ValidationError(f"Unknown language {language!r}.")
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return user
