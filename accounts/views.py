from io import BytesIO

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import ApiKeyForm, EnterpriseVerificationForm, IndividualVerificationForm, SignUpForm
from .models import AgreementVersion, ApiKey, Verification, VerificationKind, VerificationState


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
@require_http_methods(["GET"])
def verify_email(request, token):
    """The link from the verification email: marks the address verified (idempotent).

    An expired, forged or damaged link changes nothing and says so, with a button
    to ask for a new link."""
    try:
        services.verify_email(token)
    except ValidationError as exc:
        response = render(
            request,
            "accounts/email_verification.html",
            {"state": "failed", "error": exc.messages[0], "code": exc.error_list[0].code},
            status=400,
        )
    else:
        response = render(request, "accounts/email_verification.html", {"state": "verified"})
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
                {"form": form, "keys": list(selectors.api_keys_of(request.user)), "fresh": None},
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
            },
        )
        add_never_cache_headers(response)
        return response
    return render(
        request,
        "accounts/api_keys.html",
        {"form": form, "keys": list(selectors.api_keys_of(request.user)), "fresh": None},
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
    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    enrolling = device is None
    if enrolling:
        device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
        if device is None:
            device = TOTPDevice.objects.create(
                user=request.user, name="authenticator", confirmed=False
            )
    error = None
    if request.method == "POST":
        token = "".join(ch for ch in request.POST.get("token", "") if ch.isdigit())[:8]
        if token and device.verify_token(token):
            if enrolling:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
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
