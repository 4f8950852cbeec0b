"""User pages of the invoices app (mounted at /invoices/ by config/urls.py)."""

from django.urls import path  # noqa: F401

app_name = "invoices"

urlpatterns: list = []
