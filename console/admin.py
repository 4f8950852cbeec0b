"""The console's staff pages in the admin site: the workbench on the admin's home and the
360° customer page at /admin/customer/<user id>/ (URL name `admin:customer`).

Django's admin imports this module when it starts (autodiscovery), before the URLs are
read, so the site serves both from its first request."""

from django.contrib import admin

from .customer import customer_urls
from .workbench import workbench_context

site = admin.site
site.index_template = "admin/console/workbench_index.html"
_plain_index = site.index
_plain_urls = site.get_urls


def _workbench_index(request, extra_context=None):
    """The admin home with the workbench: every queue's size and age, linked."""
    return _plain_index(request, {**workbench_context(request), **(extra_context or {})})


site.index = _workbench_index
site.get_urls = lambda: customer_urls() + _plain_urls()
