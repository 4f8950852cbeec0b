"""The lean path (issue 25, billing.lean): config/wsgi.py serves the JSON APIs on a
handler with only the middleware they use; the pages keep the full stack. The gateway's
own tests run on both paths (tests/ledger/test_gateway_api.py, tests/hardening/conftest.py
`gw`); these check the dispatch itself (R-USE-1)."""

import io
import json

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from accounts.services import create_api_key
from billing.lean import LEAN_MIDDLEWARE, LeanWSGIHandler, is_lean_path, wsgi_dispatch
from billing.services.ledger import credit_lot
from tests.factories import cny
from tests.ledger.http import TOKEN, call

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture
def funded(user):
    credit_lot(user.balance_account, cny("10"), channel="alipay", idempotency_key="f")
    key, raw = create_api_key(user, name="k")
    key.raw = raw
    return key


def wsgi(app, method, path, body=b"", headers=None):
    """Call a WSGI application in-process; (status code, headers dict, body bytes)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "REMOTE_ADDR": "127.0.0.1",
        **(headers or {}),
    }
    seen = {}
    # as Django's test client does: the real handler's end-of-request signal would close
    # the connection that holds the test's transaction
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        return _call(app, environ, seen)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _call(app, environ, seen):
    def start_response(status, response_headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(response_headers)

    chunks = app(environ, start_response)
    data = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return seen["status"], seen["headers"], data


@pytest.mark.parametrize(
    "path,lean",
    [
        ("/api/v1/gateway/authorize", True),
        ("/api/v1/gateway/usage/batch", True),
        ("/api/v1/gateway/usage/a/b", True),
        ("/api/v1/me/balance", True),
        ("/api/v1/gateway/docs", False),
        ("/api/v1/gateway/openapi.json", False),
        ("/api/v1/me/docs", False),
        ("/billing/", False),
        ("/api/v1/gatewayx", False),
    ],
)
def test_which_paths_take_the_lean_path(path, lean):
    """Issue 25: the APIs take the lean path; docs, schemas and pages the full stack."""
    assert is_lean_path(path) is lean


def test_lean_handler_runs_only_the_api_middleware():
    """Issue 25: no sessions, CSRF, auth, OTP, messages or axes on the lean path."""
    handler = LeanWSGIHandler()
    assert handler._middleware_chain is not None
    assert not any("session" in m or "csrf" in m or "axes" in m for m in LEAN_MIDDLEWARE)


def test_the_dispatch_answers_like_the_full_stack(funded, settings):
    """R-USE-1, issue 25: authorize through config/wsgi.py's dispatch gives the same
    status and JSON as the full stack, with the request id and no session cookie."""
    from django.core.wsgi import get_wsgi_application

    app = wsgi_dispatch(get_wsgi_application())
    body = json.dumps({"api_key": funded.raw}).encode()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", "HTTP_X_REQUEST_ID": "req-lean-1"}
    status, headers, data = wsgi(app, "POST", "/api/v1/gateway/authorize", body, auth)
    full = Client().post(
        "/api/v1/gateway/authorize",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert (status, json.loads(data)) == (full.status_code, full.json())
    assert headers["X-Request-ID"] == "req-lean-1"
    assert "Set-Cookie" not in headers
    status, _, data = wsgi(app, "POST", "/api/v1/gateway/authorize", body, {})
    assert (status, json.loads(data)["code"]) == (401, "unauthorized")
    # the pages are still served by the full stack through the same application
    status, headers, _ = wsgi(app, "GET", "/login/", b"", {})
    assert status in (200, 302) and "X-Frame-Options" in headers


def test_lean_path_off_serves_everything_on_the_full_stack(settings):
    """GATEWAY_LEAN_PATH=off: the dispatch hands back the full application itself."""
    settings.GATEWAY_LEAN_PATH = False
    sentinel = object()
    assert wsgi_dispatch(sentinel) is sentinel


def test_gateway_metrics_are_counted_on_the_lean_path(funded):
    """Issue 25: the lean path keeps the request id middleware, so the gateway's
    answers are still counted (ops.metrics)."""
    from ops.metrics import GATEWAY_REQUESTS
    from tests.lean import LeanClient

    before = GATEWAY_REQUESTS.labels("authorize", "200")._value.get()
    LeanClient().post(
        "/api/v1/gateway/authorize",
        data=json.dumps({"api_key": funded.raw}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert GATEWAY_REQUESTS.labels("authorize", "200")._value.get() == before + 1


@pytest.mark.django_db(transaction=True)
def test_real_http_on_the_lean_path(funded):
    """R-USE-1: over a socket, through the dispatch: authorize and a usage report."""
    from tests.lean import lean_live_server

    with lean_live_server() as server:
        status, body = call(server.url, "authorize", {"api_key": funded.raw})
        assert (status, body["allowed"], body["available"]) == (200, True, "10.000000")
        event = {"request_id": "lean-1", "api_key": funded.raw, "model": "m", "amount": "0.5"}
        status, body = call(server.url, "usage", event)
        assert (status, body["status"]) == (200, "accepted")
        status, body = call(server.url, "usage", {}, raw=b"{not json")
        assert (status, body["code"]) == (400, "invalid_json")
