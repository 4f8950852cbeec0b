import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
_pages = get_wsgi_application()

# The JSON APIs take the lean path (billing/lean.py, issue 25); the pages the full stack.
from billing.lean import wsgi_dispatch  # noqa: E402 - after Django's setup

application = wsgi_dispatch(_pages)
