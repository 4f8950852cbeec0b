from django.contrib import admin
from django.urls import include, path

from config.views import home, switch_language

admin.site.site_header = "Balance operations"
admin.site.site_title = "Balance operations"
admin.site.index_title = "Cases and accounts"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("language/", switch_language, name="switch_language"),
    # the home page reads every app, so the project serves it (accounts:dashboard is "/" too)
    path("", home, name="home"),
    path("", include("accounts.urls")),
    path("billing/", include("billing.urls")),
    path("topups/", include("topups.urls")),
    path("refunds/", include("refunds.urls")),
    path("disputes/", include("disputes.urls")),
    path("invoices/", include("invoices.urls")),
    path("notices/", include("notices.urls")),
    path("ops/", include("ops.urls")),
    path("api/v1/gateway/", include("billing.gateway_urls")),
]
