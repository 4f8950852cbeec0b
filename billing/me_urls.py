"""URLs of the user's own API (billing.me_api), mounted at /api/v1/me/.

Every answer, the errors and the JSON 404 included, carries `Cache-Control: no-store`
(balances and usage must never sit in a shared cache) and is counted by endpoint and
status (billing.metrics)."""

import functools

from django.http import JsonResponse
from django.urls import URLPattern, path, re_path
from django.utils.translation import gettext as _

from .me_api import api

ENDPOINTS = {"balance", "usage", "key", "docs", "openapi.json"}


def _label(request) -> str:
    rest = request.path.split("/api/v1/me/", 1)[-1].strip("/")
    if rest.startswith("usage/"):
        return "usage/{id}"
    return rest if rest in ENDPOINTS else "other"  # never a caller-chosen label value


def _no_store(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405:  # ninja's plain-text answer: the API's JSON shape
            allow = response.get("Allow", "GET")
            response = JsonResponse(
                {"code": "method_not_allowed", "message": _("This endpoint answers GET only.")},
                status=405,
            )
            response["Allow"] = allow
        response["Cache-Control"] = "no-store"
        from .metrics import ME_API_REQUESTS

        ME_API_REQUESTS.labels(_label(request), str(response.status_code)).inc()
        return response

    return wrapped


def _no_such_endpoint(request, rest=""):
    return JsonResponse({"code": "not_found", "message": _("No such endpoint.")}, status=404)


def _wrap(patterns):
    for p in patterns:
        if isinstance(p, URLPattern):
            p.callback = _no_store(p.callback)
    return patterns


_patterns, _app, _namespace = api.urls
urlpatterns = [
    path("", (_wrap(_patterns), _app, _namespace)),
    re_path(r"^(?P<rest>[\s\S]*)$", _no_store(_no_such_endpoint)),
]
