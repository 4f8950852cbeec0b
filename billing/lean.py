"""The gateway's lean path (issue 25): the JSON APIs served by their own Django handler.

config/wsgi.py and config/asgi.py hand every request under LEAN_PREFIXES (the model
gateway, /api/v1/gateway/, and the user's own API, /api/v1/me/) to a handler that runs
only what those endpoints use: the request id and the gateway metrics
(ops.observability), the security headers, and the caller's language for the error
messages. Sessions, CSRF, authentication, OTP, axes and messages are for pages; the APIs
authenticate by token or API key and never read them. The views, services and answers
are the same ones; only the per-call Python shrinks. Docs pages and schemas stay on the
full stack (a staff member's session may open them in production).

Settings: GATEWAY_LEAN_PATH (on by default) turns the dispatch off.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler

LEAN_PREFIXES = ("/api/v1/gateway/", "/api/v1/me/")
# the browsable docs and schemas: served by the full stack (a staff session opens them)
FULL_STACK_SUFFIXES = ("/docs", "/openapi.json")
LEAN_URLCONF = "billing.lean_urls"
LEAN_MIDDLEWARE = [
    "billing.lean.LeanUrlconfMiddleware",
    "ops.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # Accept-Language for error messages
]


def is_lean_path(path: str) -> bool:
    return path.startswith(LEAN_PREFIXES) and not path.rstrip("/").endswith(FULL_STACK_SUFFIXES)


class LeanUrlconfMiddleware:
    """Resolve against the APIs' own URLconf (two prefixes), not the portal's."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.urlconf = LEAN_URLCONF
        return self.get_response(request)


class LeanMiddlewareMixin:
    """Build the handler's chain from LEAN_MIDDLEWARE instead of settings.MIDDLEWARE.

    BaseHandler.load_middleware reads the setting; it is swapped for the duration of the
    call only (once per process, at start-up, before any request thread runs)."""

    def load_middleware(self, is_async=False):
        saved = settings.MIDDLEWARE
        settings.MIDDLEWARE = LEAN_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = saved


class LeanWSGIHandler(LeanMiddlewareMixin, WSGIHandler):
    pass


class LeanASGIHandler(LeanMiddlewareMixin, ASGIHandler):
    pass


def wsgi_dispatch(full_app):
    """A WSGI application: lean paths to the lean handler, the rest to `full_app`."""
    if not getattr(settings, "GATEWAY_LEAN_PATH", True):
        return full_app
    lean_app = LeanWSGIHandler()

    def application(environ, start_response):
        if is_lean_path(environ.get("PATH_INFO", "")):
            return lean_app(environ, start_response)
        return full_app(environ, start_response)

    return application


def asgi_dispatch(full_app):
    """The ASGI twin of wsgi_dispatch (lifespan and websocket scopes go to `full_app`)."""
    if not getattr(settings, "GATEWAY_LEAN_PATH", True):
        return full_app
    lean_app = LeanASGIHandler()

    async def application(scope, receive, send):
        if scope.get("type") == "http" and is_lean_path(scope.get("path", "")):
            return await lean_app(scope, receive, send)
        return await full_app(scope, receive, send)

    return application
