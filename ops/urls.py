from django.urls import path

from . import health
from .observability import metrics_view

app_name = "ops"

urlpatterns: list = [
    path("health/live/", health.live, name="health_live"),
    path("health/ready/", health.ready, name="health_ready"),
    path("metrics/", metrics_view, name="metrics"),
]
