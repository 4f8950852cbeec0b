from io import BytesIO

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import ApiKeyForm, EnterpriseVerificationForm, IndividualVerificationForm, SignUpForm
from .models import AgreementVersion, ApiKey, Verification, VerificationKind, VerificationState
from .selfservice_forms import (
    EmailChangeForm,
    NoticePasswordResetForm,
    PasswordConfirmForm,
    ProfileForm,
)


@require_http_methods(["GET", "POST"])
def signup(request):
    """Sign up (R-ACC-1). The answer is the same whether the address was free or already
    had an account (no account enumeration): a new account is opened, and either way the
    visitor is sent to log in."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if selectors.user_by_email(form.cleaned_data["email"]) is None:
            services.register_user(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                phone=form.cleaned_data.get("phone", ""),
                # the language the sign-up page was shown in: notices follow it (R-ADM-6)
                language=translation.get_language_from_request(request) or settings.LANGUAGE_CODE,
            )
        else:
            make_password(form.cleaned_data["password"])  # the same work as a new account
        messages.success(
            request,
            _(
                "Your balance account is ready if this address was new: log in with your "
                "email and password, and open the link we sent to verify the address before "
                "you top up. If you already had an account with it, log in to that one."
            ),
        )
        return redirect(settings.LOGIN_URL)
    return render(request, "accounts/signup.html", {"form": form})


# ---------------------------------------------------------------- email verification (issue 13)
@require_http_methods(["GET", "POST"])
def verify_email(request, token):
    """The link from the verification email. A GET only shows a confirmation page (mail
    scanners and link previewers open links: issue 24); the page's button POSTs, which
    marks the address verified (idempotent).

    An expired, forged or damaged link changes nothing and says so, with a button
    to ask for a new link."""
    try:
        if request.method == "POST":
            services.verify_email(token)
        else:
            services.check_email_token(token)
    except ValidationError as exc:
        response = render(
            request,
            "accounts/email_verification.html",
            {"state": "failed", "error": exc.messages[0], "code": exc.error_list[0].code},
            status=400,
        )
    else:
        state = "verified" if request.method == "POST" else "confirm"
        response = render(request, "accounts/email_verification.html", {"state": state})
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def resend_email_verification(request):
    """Send a new verification link to the logged-in user's address (rate-limited)."""
    status = 200
    if request.method == "POST":
        try:
            services.resend_email_verification(request.user)
        except ValidationError as exc:
            code = exc.error_list[0].code
            if code == "already_verified":
                messages.info(request, exc.messages[0])
                return redirect("home")
            messages.error(request, exc.messages[0])
            status = 429
        else:
            messages.success(
                request,
                _("A new link is on its way to %(email)s.") % {"email": request.user.email},
            )
            return redirect("accounts:resend_email_verification")
    elif request.user.email_verified_at is not None:
        messages.info(request, _("Your email address is already verified."))
        return redirect("home")
    return render(request, "accounts/email_verification.html", {"state": "resend"}, status=status)


def _add_errors(form, exc):
    for message in exc.messages:
        form.add_error(None, message)


# ---------------------------------------------------------------- verification (R-ACC-2)
@login_required
def verification_status(request):
    history = list(selectors.verifications_of(request.user)[:20])
    current = history[0] if history else None
    can_submit = current is None or current.state in (
        VerificationState.REJECTED,
        VerificationState.REVOKED,
        VerificationState.DRAFT,
    )
    return render(
        request,
        "accounts/verification_status.html",
        {"current": current, "history": history, "can_submit": can_submit},
    )


@login_required
def verification_detail(request, pk):
    try:
        verification = selectors.verification_of(request.user, pk)
    except Verification.DoesNotExist:
        raise Http404("No such verification.")
    return render(request, "accounts/verification_detail.html", {"v": verification})


@login_required
@require_http_methods(["GET", "POST"])
def verification_submit(request, kind):
    form_class = {
        VerificationKind.INDIVIDUAL: IndividualVerificationForm,
        VerificationKind.ENTERPRISE: EnterpriseVerificationForm,
    }.get(kind)
    if form_class is None:
        raise Http404("Unknown kind.")
    initial = {"phone": request.user.phone}
    form = form_class(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.submit_verification(request.user, kind=kind, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Submitted. We will review it and let you know."))
            return redirect("accounts:verification")
    return render(
        request,
        "accounts/verification_form.html",
        {"form": form, "kind": VerificationKind(kind)},
    )


# ---------------------------------------------------------------- API keys (R-ACC-6)
def _key_standing(user) -> dict:
    """What the key page says about the account's standing (R-ACC-8): whether its keys
    can be used and whether a new one can be made, before the user tries."""
    from .models import Standing
    from .standing import Action, may

    standing = user.balance_account.standing
    return {
        "keys_blocked": not may(standing, Action.CONSUME),
        "can_create": may(standing, Action.CREATE_KEY),
        "standing_label": Standing(standing).label.lower(),
    }


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key, raw = services.create_api_key(request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            _add_errors(form, exc)
            return render(
                request,
                "accounts/api_keys.html",
                {
                    "form": form,
                    "keys": list(selectors.api_keys_of(request.user)),
                    "fresh": None,
                    **_key_standing(request.user),
                },
                status=400,
            )
        # Shown once, in this answer only: never stored anywhere (not in the session table),
        # and the answer itself may not be cached.
        response = render(
            request,
            "accounts/api_keys.html",
            {
                "form": ApiKeyForm(),
                "keys": list(selectors.api_keys_of(request.user)),
                "fresh": {"id": key.pk, "secret": raw},
                **_key_standing(request.user),
            },
        )
        add_never_cache_headers(response)
        return response
    return render(
        request,
        "accounts/api_keys.html",
        {
            "form": form,
            "keys": list(selectors.api_keys_of(request.user)),
            "fresh": None,
            **_key_standing(request.user),
        },
    )


@login_required
@require_POST
def api_key_revoke(request, pk):
    try:
        key = services.revoke_api_key(request.user, pk)
    except ApiKey.DoesNotExist:
        raise Http404("No such key.")
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(
            request,
            _("Key %(prefix)s… revoked; calls with it are now refused.") % {"prefix": key.prefix},
        )
    return redirect("accounts:api_keys")


# ---------------------------------------------------------------- agreement (R-ACC-7)
@login_required
def agreement(request):
    in_force = selectors.agreement_in_force()
    upcoming = selectors.upcoming_agreement()
    accepted = selectors.acceptances_of(request.user, [in_force, upcoming])
    return render(
        request,
        "accounts/agreement.html",
        {"in_force": in_force, "upcoming": upcoming, "accepted": accepted},
    )


@login_required
@require_POST
def agreement_accept(request, pk):
    version = get_object_or_404(AgreementVersion, pk=pk)
    try:
        services.accept_agreement(request.user, version, ip=request.META.get("REMOTE_ADDR", ""))
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(
            request, _("You accepted version %(number)s.") % {"number": version.version}
        )
    return redirect("accounts:agreement")


# ---------------------------------------------------------------- staff downloads (R-ACC-5)
@login_required
def verification_document(request, pk, which):
    """Decrypted licence / evidence for staff holding accounts.view_identity_document.

    Never a media URL: every download is permission-checked and audited.
    """
    verification = get_object_or_404(Verification, pk=pk)
    if not request.user.is_staff and verification.user_id != request.user.pk:
        raise Http404("No such document.")  # another user's file: nothing to see here
    try:
        data, content_type, filename = services.read_document(
            verification, which, actor=request.user
        )
    except FileNotFoundError:
        raise Http404("No such document.")
    response = FileResponse(
        BytesIO(data), as_attachment=True, filename=filename, content_type=content_type
    )
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- staff second factor


@login_required
@require_http_methods(["GET", "POST"])
def staff_otp(request):
    """Enrol a TOTP authenticator (first time) or type its current code (issue 13)."""
    from django.utils.http import url_has_allowed_host_and_scheme
    from django_otp import login as otp_login
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from .otp import second_factor_required

    next_url = request.POST.get("next") or request.GET.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = "/admin/"
    if not second_factor_required(request.user) or request.user.is_verified():
        return redirect(next_url)
    from .otp import spend_enrolment_code

    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    enrolling = device is None
    error = None
    if enrolling:
        # issue 24: enrolment needs a one-time code another administrator issued; the
        # authenticator's key is made (afresh) and shown only once that code is accepted
        device = TOTPDevice.objects.filter(
            user=request.user, confirmed=False, pk=request.session.get("otp_enrol_device")
        ).first()
        if device is None:
            if request.method == "POST" and spend_enrolment_code(
                request.user, request.POST.get("enrolment_code")
            ):
                TOTPDevice.objects.filter(user=request.user, confirmed=False).delete()
                device = TOTPDevice.objects.create(
                    user=request.user, name="authenticator", confirmed=False
                )
                request.session["otp_enrol_device"] = device.pk
            else:
                if request.method == "POST":
                    error = _("That enrolment code is not right, or it was already used.")
                response = render(
                    request,
                    "accounts/staff_otp.html",
                    {"needs_enrolment_code": True, "error": error, "next": next_url},
                    status=400 if error else 200,
                )
                add_never_cache_headers(response)
                return response
    if request.method == "POST" and "token" in request.POST:
        token = "".join(ch for ch in request.POST.get("token", "") if ch.isdigit())[:8]
        if token and device.verify_token(token):
            if enrolling:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                request.session.pop("otp_enrol_device", None)
            otp_login(request, device)
            return redirect(next_url)
        error = _("That code is not right. Type the current six-digit code.")
    from base64 import b32encode

    context = {
        "enrolling": enrolling,
        "config_url": device.config_url if enrolling else "",
        "secret": b32encode(device.bin_key).decode() if enrolling else "",
        "error": error,
        "next": next_url,
    }
    response = render(request, "accounts/staff_otp.html", context, status=400 if error else 200)
    add_never_cache_headers(response)
    return response


# ---------------------------------------------------------------- the user's own account (issue 22)
class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link: the same answer whether or not the address has an account."""

    form_class = NoticePasswordResetForm
    template_name = "registration/password_reset_form.html"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The link from the email: a new password spends the token (a second use fails),
    lifts a login lockout for that address, and tells the user."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        from axes.utils import reset as axes_reset

        axes_reset(username=form.user.email)
        services.password_changed(form.user, event="password_reset")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change the password: this session stays signed in, every other one ends (Django
    checks each session against the password's hash)."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("accounts:profile")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(form.user)
        messages.success(
            self.request, _("Your password was changed. Other devices have been signed out.")
        )
        return response


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    """Email (changed only after the new address is verified), phone, language, links to
    notification preferences, password change and signing out everywhere."""
    user = request.user
    form = ProfileForm(
        request.POST if request.POST.get("action") == "profile" else None,
        initial={"phone": user.phone, "language": user.language},
    )
    email_form = EmailChangeForm(request.POST if request.POST.get("action") == "email" else None)
    status = 200
    if request.method == "POST":
        if form.is_bound and form.is_valid():
            user = services.update_profile(
                user, phone=form.cleaned_data["phone"], language=form.cleaned_data["language"]
            )
            translation.activate(user.language)
            response = redirect("accounts:profile")
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, user.language)
            messages.success(request, _("Your profile was saved."))
            return response
        if email_form.is_bound and email_form.is_valid():
            try:
                services.request_email_change(user, new_email=email_form.cleaned_data["email"])
            except ValidationError as exc:
                _add_errors(email_form, exc)
            else:
                messages.success(
                    request,
                    _(
                        "We sent a link to %(email)s. Your address changes when you open it; "
                        "until then the current one stays."
                    )
                    % {"email": email_form.cleaned_data["email"]},
                )
                return redirect("accounts:profile")
        status = 400
    return render(
        request,
        "accounts/profile.html",
        {"form": form, "email_form": email_form, "signout_form": PasswordConfirmForm()},
        status=status,
    )


@require_http_methods(["GET"])
def confirm_email_change(request, token):
    """The link sent to the new address: the change takes effect (once)."""
    try:
        user = services.confirm_email_change(token)
    except ValidationError as exc:
        response = render(
            request,
            "accounts/email_change.html",
            {"error": exc.messages[0], "code": exc.error_list[0].code},
            status=400,
        )
    else:
        response = render(request, "accounts/email_change.html", {"email": user.email})
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def sign_out_everywhere(request):
    """End every other session of this user (asks for the password)."""
    form = PasswordConfirmForm(request.POST)
    if form.is_valid():
        try:
            user = services.sign_out_everywhere(
                request.user, password=form.cleaned_data["password"]
            )
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            update_session_auth_hash(request, user)
            messages.success(request, _("Every other session has been signed out."))
    else:
        messages.error(request, _("Enter your password to sign out everywhere."))
    return redirect("accounts:profile")
