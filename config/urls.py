from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

admin.site.site_header = _("Balance operations")
admin.site.site_title = _("Balance operations")
admin.site.index_title = _("Cases and accounts")
# the workbench on the admin's home and the customer page: console/admin.py

urlpatterns = [
    path("admin/", admin.site.urls),
    # the home page and the language switcher (console reads every app)
    path("", include("console.urls")),
    path("", include("accounts.urls")),
    path("billing/", include("billing.urls")),
    path("topups/", include("topups.urls")),
    path("refunds/", include("refunds.urls")),
    path("disputes/", include("disputes.urls")),
    path("invoices/", include("invoices.urls")),
    path("notices/", include("notices.urls")),
    path("ops/", include("ops.urls")),
    path("api/v1/gateway/", include("billing.gateway_urls")),
    path("api/v1/me/", include("billing.me_urls")),  # the user's API (issue 27)
]
