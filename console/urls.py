"""The console's user pages, at the site's root (no namespace: `home`, `switch_language`).
Its staff pages hang in the admin site (console/admin.py)."""

from django.urls import path

from .views import home, switch_language

urlpatterns = [
    path("language/", switch_language, name="switch_language"),
    path("", home, name="home"),
]
