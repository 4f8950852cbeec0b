"""URLs of the model gateway API (mounted at /api/v1/gateway/ in config/urls.py)."""

from django.urls import path

from .api import api

urlpatterns = [path("", api.urls)]
