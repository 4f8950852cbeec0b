"""The user's own account (issue 22): profile, email change re-verified before it takes
effect, password change and reset notices, signing out everywhere. Each function is one
transaction; every email goes through notices.services.send_notice in the user's
language."""

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from core.workflow import record_audit
from notices.services import send_notice

from ..models import User

EMAIL_CHANGE_SALT = "accounts.email_change"


def _base() -> str:
    return (getattr(settings, "PORTAL_BASE_URL", "") or "").rstrip("/")


@transaction.atomic
def update_profile(user, *, phone: str, language: str) -> User:
    """Phone and language (R-ADM-6: pages and notices in that language)."""
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(_("Unknown language."), code="invalid_language")
    user = User.objects.select_for_update().get(pk=user.pk)
    changed = []
    if user.phone != phone:
        user.phone, changed = phone, [*changed, "phone", "phone_digest"]
    if user.language != language:
        user.language, changed = language, [*changed, "language"]
    if changed:
        user.save()
        record_audit(user, action="update_profile", actor=user)
    return user


def email_change_token(user, new_email: str) -> str:
    return TimestampSigner(salt=EMAIL_CHANGE_SALT).sign_object(
        {"u": user.pk, "old": user.email, "new": new_email}
    )


@transaction.atomic
def request_email_change(user, *, new_email: str):
    """Send a link to the NEW address; the address changes only when it is opened
    (the old one keeps working meanwhile). An address another account uses is refused."""
    new_email = User.objects.normalize_email(new_email).lower()
    if new_email == user.email:
        raise ValidationError(_("This is already your email address."), code="same_email")
    if User.objects.filter(email=new_email).exists():
        raise ValidationError(_("Another account uses this address."), code="email_taken")
    url = _base() + reverse(
        "accounts:confirm_email_change", args=[email_change_token(user, new_email)]
    )
    hours = settings.EMAIL_VERIFICATION_MAX_AGE_HOURS
    now = timezone.now()
    return send_notice(
        user=user,
        kind="email_change",
        # `to_email`: delivered to the new address (notices.services.deliver_notice)
        context={"url": url, "hours": hours, "new_email": new_email, "to_email": new_email},
        dedupe_key=f"email_change:{user.pk}:{now.timestamp():.6f}",
    )


@transaction.atomic
def confirm_email_change(token: str) -> User:
    """Open the link: the address changes and counts as verified. Refused, changing
    nothing: expired, forged, already used (the old address no longer matches), or the
    new address taken meanwhile."""
    max_age = settings.EMAIL_VERIFICATION_MAX_AGE_HOURS * 3600
    invalid = ValidationError(_("This link is not valid. Ask for a new one."), code="link_invalid")
    try:
        data = TimestampSigner(salt=EMAIL_CHANGE_SALT).unsign_object(token or "", max_age=max_age)
    except SignatureExpired:
        raise ValidationError(
            _("This link has expired. Ask for a new one."), code="link_expired"
        ) from None
    except (BadSignature, ValueError, TypeError):
        raise invalid from None
    if not isinstance(data, dict):
        raise invalid
    user = User.objects.select_for_update().filter(pk=data.get("u")).first()
    if user is None or user.email != data.get("old") or not data.get("new"):
        raise invalid
    if User.objects.filter(email=data["new"]).exclude(pk=user.pk).exists():
        raise ValidationError(_("Another account uses this address."), code="email_taken")
    old = user.email
    user.email = data["new"]
    user.email_verified_at = timezone.now()
    user.save(update_fields=["email", "email_verified_at"])
    record_audit(user, action="change_email", actor=user)
    send_notice(
        user=user,
        kind="security_alert",
        # the OLD address learns of it too: a stolen session cannot move the account quietly
        context={"event": "email_changed", "old_email": old, "to_email": old},
        dedupe_key=f"email_changed:{user.pk}:{user.email_verified_at.timestamp():.6f}",
    )
    return user


def password_changed(user, *, event: str = "password_changed"):
    """Tell the user their password changed (by them, or through a reset link)."""
    now = timezone.now()
    record_audit(user, action=event, actor=user)
    return send_notice(
        user=user,
        kind="security_alert",
        context={"event": event},
        dedupe_key=f"{event}:{user.pk}:{now.timestamp():.6f}",
    )


@transaction.atomic
def sign_out_everywhere(user, *, password: str) -> User:
    """End every session of the user (other browsers too): the password is hashed again
    with a new salt, which changes the session auth hash every session is checked
    against. Asks for the password, so a left-open session cannot lock the owner out."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not check_password(password, user.password):
        raise ValidationError(_("The password is not correct."), code="wrong_password")
    user.set_password(password)
    user.save(update_fields=["password"])
    record_audit(user, action="sign_out_everywhere", actor=user)
    return user
