"""The lean path (billing.lean) under test: a test client and a live server that route
like config/wsgi.py (the JSON APIs to the lean handler, the pages to the full stack)."""

from contextlib import contextmanager

from django.test import Client
from django.test.client import ClientHandler

from billing.lean import LeanMiddlewareMixin, is_lean_path, wsgi_dispatch


class LeanClientHandler(LeanMiddlewareMixin, ClientHandler):
    """The test client's handler on the lean chain."""


class LeanClient(Client):
    """Django's test client; requests to the APIs go through the lean handler."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._full_handler = self.handler
        self._lean_handler = LeanClientHandler(enforce_csrf_checks=False)

    def request(self, **request):
        lean = is_lean_path(request.get("PATH_INFO", ""))
        self.handler = self._lean_handler if lean else self._full_handler
        try:
            return super().request(**request)
        finally:
            self.handler = self._full_handler


@contextmanager
def lean_live_server():
    """pytest-django's live server, serving config/wsgi.py's dispatch (lean path on)."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost", start=False)
    static = server.thread.static_handler
    server.thread.static_handler = lambda app: wsgi_dispatch(static(app))
    server._live_server_modified_settings.enable()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server._live_server_modified_settings.disable()
