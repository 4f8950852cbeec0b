from io import BytesIO

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import ApiKeyForm, EnterpriseVerificationForm, IndividualVerificationForm, SignUpForm
from .models import AgreementVersion, ApiKey, Verification, VerificationKind, VerificationState

FRESH_SECRET_SESSION_KEY = "accounts.fresh_api_key"


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.register_user(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            phone=form.cleaned_data.get("phone", ""),
            # the language the sign-up page was shown in: notices follow it (R-ADM-6)
            language=translation.get_language_from_request(request) or settings.LANGUAGE_CODE,
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome! Your balance account is open."))
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


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
        key, raw = services.create_api_key(request.user, name=form.cleaned_data["name"])
        # Shown once: kept in the session only until the next page renders it.
        request.session[FRESH_SECRET_SESSION_KEY] = {"id": key.pk, "secret": raw}
        return redirect("accounts:api_keys")
    fresh = request.session.pop(FRESH_SECRET_SESSION_KEY, None)
    return render(
        request,
        "accounts/api_keys.html",
        {"form": form, "keys": list(selectors.api_keys_of(request.user)), "fresh": fresh},
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
