from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.balance, name="balance"),
    path("statement.csv", views.statement_csv, name="statement_csv"),
    path("usage/<int:txn_id>/", views.usage_events, name="usage_events"),
    path("usage/", views.usage, name="usage"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("limits/", views.limits, name="limits"),
    path("packages/", views.packages, name="packages"),
]
