from django.contrib import admin
from django.urls import include, path

from config.customer import customer_urls
from config.views import home, switch_language
from config.workbench import workbench_context

admin.site.site_header = "Balance operations"
admin.site.site_title = "Balance operations"
admin.site.index_title = "Cases and accounts"
admin.site.index_template = "admin/workbench_index.html"
_plain_admin_index = admin.site.index


def _workbench_index(request, extra_context=None):
    """The admin home with the workbench: every queue's size and age, linked."""
    return _plain_admin_index(request, {**workbench_context(request), **(extra_context or {})})


admin.site.index = _workbench_index
_plain_admin_urls = admin.site.get_urls
admin.site.get_urls = lambda: customer_urls() + _plain_admin_urls()  # the 360° customer page

urlpatterns = [
    path("admin/", admin.site.urls),
    path("language/", switch_language, name="switch_language"),
    # the home page reads every app, so the project serves it
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
