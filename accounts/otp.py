"""Staff second factor (TOTP through django-otp), issue 13.

When settings.STAFF_OTP_REQUIRED is on (the default in production), a staff member who
logged in with a password reaches the admin only after a one-time code from an
authenticator app: the first time they enrol (the page shows the key and the otpauth://
link to add it), afterwards they type the current code. The verified device is kept in
the session (django-otp's OTPMiddleware), so it is asked once per login.
"""

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


class StaffSecondFactorMiddleware:
    """Sends a staff member without a verified second factor from any admin page to the
    second-factor page (after django-otp's OTPMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and request.path.startswith("/admin/")
            and not request.path.startswith(("/admin/login/", "/admin/logout/"))
            and second_factor_required(user)
            and not user.is_verified()
        ):
            target = reverse("accounts:staff_otp")
            return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
