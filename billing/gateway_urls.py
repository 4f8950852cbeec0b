"""URLs of the model gateway API (mounted at /api/v1/gateway/ in config/urls.py)."""

from django.http import JsonResponse
from django.urls import path, re_path

from .api import api


def _no_such_endpoint(request, rest=""):
    """Anything under the gateway's prefix that is no endpoint (for example
    `usage/` with an empty request id) answers in the API's own JSON error shape,
    never Django's HTML 404 page."""
    return JsonResponse({"code": "not_found", "message": "No such gateway endpoint."}, status=404)


urlpatterns = [path("", api.urls), re_path(r"^(?P<rest>[\s\S]*)$", _no_such_endpoint)]
