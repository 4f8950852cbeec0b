"""Staff second factor (TOTP through django-otp), issue 13.

When settings.STAFF_OTP_REQUIRED is on (the default in production), a staff member who
logged in with a password reaches the admin only after a one-time code from an
authenticator app: the first time they enrol (the page shows the key and the otpauth://
link to add it), afterwards they type the current code. The verified device is kept in
the session (django-otp's OTPMiddleware), so it is asked once per login.

Enrolment (issue 24 point 6): a password alone never enrols an authenticator, or a stolen
password would enrol the thief's device. The first enrolment (and a re-enrolment after a
lost phone) needs a one-time enrolment code that ANOTHER superuser issued (admin, Users,
"Issue a second-factor enrolment code"; `issue_enrolment_code`), handed over out of
band. The authenticator's key is made and shown only after that code is accepted.
"""

import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse


def second_factor_required(user) -> bool:
    return bool(
        getattr(settings, "STAFF_OTP_REQUIRED", False)
        and user.is_authenticated
        and user.is_active
        and user.is_staff
    )


# What a staff session opens beyond the user pages (issue 24 point 6): the admin, the
# operations pages (/ops/metrics/ …) and the gateway's documentation and schema.
STAFF_PREFIXES = ("/admin/", "/ops/", "/api/v1/gateway/docs", "/api/v1/gateway/openapi.json")


class StaffSecondFactorMiddleware:
    """Sends a staff member without a verified second factor from any staff page (the
    admin, /ops/, the gateway docs) to the second-factor page (after django-otp's
    OTPMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and request.path.startswith(STAFF_PREFIXES)
            and not request.path.startswith(("/admin/login/", "/admin/logout/"))
            and second_factor_required(user)
            and not user.is_verified()
        ):
            target = reverse("accounts:staff_otp")
            return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


ENROLMENT_DEVICE = "enrolment"  # the django-otp static device holding the one-time code


def issue_enrolment_code(staff, *, actor) -> str:
    """A one-time code that lets `staff` enrol an authenticator (issue 24 point 6); any
    earlier unused code of theirs is void. Only an active superuser other than `staff`
    may issue it; audited. Returns the code, shown once to the issuer."""
    from django.core.exceptions import PermissionDenied
    from django.db import transaction
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    from core.workflow import record_audit

    if actor is None or not (actor.is_active and actor.is_superuser):
        raise PermissionDenied("Only a superuser issues second-factor enrolment codes.")
    if actor.pk == staff.pk:
        raise PermissionDenied("Another administrator must issue your enrolment code.")
    # 48 random bits (django-otp throttles guesses); the token column holds 16 characters
    code = "-".join(secrets.token_hex(2) for _ in range(3))  # e.g. 3f9a-0b7e-91c4
    with transaction.atomic():
        StaticDevice.objects.filter(user=staff, name=ENROLMENT_DEVICE).delete()
        device = StaticDevice.objects.create(user=staff, name=ENROLMENT_DEVICE, confirmed=True)
        StaticToken.objects.create(device=device, token=code)
        record_audit(staff, action="issue_otp_enrolment_code", actor=actor)
    return code


def spend_enrolment_code(staff, code) -> bool:
    """True (and the code is spent) when `code` is staff's unused enrolment code."""
    from django_otp.plugins.otp_static.models import StaticDevice

    code = (code or "").strip().lower()[:40]
    device = StaticDevice.objects.filter(user=staff, name=ENROLMENT_DEVICE).first()
    if not code or device is None:
        return False
    return device.verify_token(code)  # deletes the token on success; throttled
