"""User pages of the disputes app (mounted at /disputes/ by config/urls.py)."""

from django.urls import path  # noqa: F401

app_name = "disputes"

urlpatterns: list = []
