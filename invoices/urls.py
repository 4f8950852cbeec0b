"""User pages of the invoices app (mounted at /invoices/ by config/urls.py)."""

from django.urls import path

from . import views

app_name = "invoices"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/files/<int:file_id>/", views.download, name="download"),
]
