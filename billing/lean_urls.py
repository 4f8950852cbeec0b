"""The lean path's URLconf (billing.lean): only the JSON APIs, nothing of the pages."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/gateway/", include("billing.gateway_urls")),
    path("api/v1/me/", include("billing.me_urls")),
]
