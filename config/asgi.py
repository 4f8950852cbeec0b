import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
_pages = get_asgi_application()

# The JSON APIs take the lean path (billing/lean.py, issue 25); the pages the full stack.
from billing.lean import asgi_dispatch  # noqa: E402 - after Django's setup

application = asgi_dispatch(_pages)
