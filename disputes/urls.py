"""User pages of the disputes app (mounted at /disputes/ by config/urls.py)."""

from django.urls import path

from . import views

app_name = "disputes"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/evidence/", views.upload_evidence, name="evidence"),
]
