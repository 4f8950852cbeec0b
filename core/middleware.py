"""Request-wide behaviour that belongs to no single app."""

from django.conf import settings
from django.utils import translation


class UserLanguageMiddleware:
    """A signed-in user's saved language wins over the browser's (R-ADM-6).

    Runs after AuthenticationMiddleware. The language cookie, set by the switcher
    together with the saved choice, still wins on the device where it was set; on
    any other device the saved choice applies. Anonymous visitors get the
    browser's language, and Simplified Chinese when it names none we have.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        chosen = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
        if (
            chosen
            and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES
            and chosen != request.LANGUAGE_CODE
            and not request.path.startswith("/api/")
        ):
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        return self.get_response(request)
