"""The user's home page and the language switcher."""

from contextlib import suppress

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from accounts.services import set_preferred_language

from .home import home_context


@login_required
def home(request):
    """Balance by kind, what needs attention, the next steps."""
    return render(request, "console/home.html", home_context(request.user))


@require_POST
def switch_language(request):
    """Django's set_language (cookie, safe redirect), and the choice saved for the
    signed-in user so it follows them to other devices and into notices."""
    response = set_language(request)
    if request.user.is_authenticated:
        # set_language already ignored an unknown code; then there is nothing to save.
        with suppress(ValidationError):
            set_preferred_language(request.user, request.POST.get("language", ""))
    return response
