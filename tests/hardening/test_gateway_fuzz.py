"""A schemathesis fuzz of the gateway's OpenAPI schema against the live server (issue 13):
bodies generated from the schema (following it and breaking it), sent over real HTTP to
pytest-django's live server; no answer may be a 500 or anything but JSON.

schemathesis' own pytest plugin (`schemathesis.pytest.from_fixture`) fails under pytest 9
(`Function` has no `_nodeid`), so the test drives the same strategies with hypothesis
directly: `APIOperation.as_strategy(mode)` per operation and mode.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from billing.models import UsageEvent
from tests.ledger.http import TOKEN

EXAMPLES = 40  # per operation and mode: 3 operations x 2 modes x 40 = 240 requests


@pytest.mark.django_db(transaction=True)
def test_gateway_answers_every_generated_request_without_a_500(served, funded, settings_):
    """Issue 13: whatever the schema-driven generator sends (valid or not), the gateway
    answers with a JSON body and a status below 500; on the full stack and on the lean
    path config/wsgi.py serves it on (issue 25)."""
    live_server = served
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}/api/v1/gateway/openapi.json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path.removeprefix("/api/v1/gateway") for op in operations}
    assert paths >= {"/authorize", "/usage", "/usage/batch"}
    seen = {"requests": 0, "statuses": set()}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case):
                if any(ch.isspace() or ord(ch) < 32 for ch in case.formatted_path):
                    return  # no valid request line: the HTTP server refuses it, not the portal
                response = case.call(
                    base_url=live_server.url,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                seen["requests"] += 1
                seen["statuses"].add(response.status_code)
                assert response.status_code < 500, (case.body, response.text[:500])
                content_type = (response.headers.get("content-type") or [""])[0]
                assert content_type.startswith("application/json"), content_type

            fuzz()
    assert seen["requests"] >= 3 * 2 * 10
    assert seen["statuses"] & {400, 404}  # the generator did reach the refusals
    # and with the one real key funded, nothing it sent could charge it
    assert not UsageEvent.objects.filter(api_key=funded).exists()


@pytest.fixture(params=["full", "lean"])
def served(request):
    if request.param == "full":
        yield request.getfixturevalue("live_server")
        return
    from tests.lean import lean_live_server

    with lean_live_server() as server:
        yield server


@pytest.fixture
def settings_(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN
    return settings


# Hostile values for one path segment (issue 24 point 5): NUL and other controls, the
# invisible characters that spoof what staff read, traversal, huge numbers, long text.
HOSTILE_SEGMENTS = [
    "%00",
    "a%00b",
    "%01",
    "%7F",
    "%C2%85",
    "%E2%80%AE",  # right-to-left override
    "%E2%80%8B",  # zero-width space
    "%EF%BB%BF",
    "..%2F..%2Fetc",
    "99999999999999999999999",
    "-1",
    "x" * 600,
    "%F0%9F%98%80",
    "%27%20OR%201%3D1",
]


def _routes(patterns=None, prefix=""):
    """Every URL pattern with a converter outside the admin (its route with the
    converters): the gateway, the user's API and the user pages."""
    from django.urls import URLPattern, URLResolver, get_resolver

    out = []
    for p in get_resolver().url_patterns if patterns is None else patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            if route.startswith("admin/"):
                continue
            out += _routes(p.url_patterns, prefix + route)
        elif isinstance(p, URLPattern) and "<" in route and not route.startswith("^"):
            out.append(prefix + route)
    return out


@pytest.mark.django_db
def test_every_path_parameter_refuses_hostile_values_without_a_500(user, settings_):
    """Issue 24 point 5: `GET /api/v1/gateway/usage/%00` answered 500. Every path
    parameter of the gateway, the user's API and the user pages (each URL pattern with a
    converter) gets each hostile segment, logged in as a user and with the gateway's
    token: no answer is a server error, and the gateway's answers are JSON."""
    import re

    from django.test import Client

    routes = _routes()
    assert any(r.startswith("api/v1/gateway/") for r in routes), routes
    client = Client(raise_request_exception=False)
    client.force_login(user)
    tried = 0
    for route in routes:
        for segment in HOSTILE_SEGMENTS:
            url = "/" + re.sub(r"<(?:\w+:)?\w+>", segment, route)
            for method in ("get", "post"):
                response = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
                tried += 1
                assert response.status_code < 500, (method, url, response.status_code)
                if url.startswith("/api/") and method == "get":  # a 405 may be plain
                    content_type = response.headers.get("Content-Type", "")
                    assert content_type.startswith("application/json"), (url, content_type)
    assert tried >= len(HOSTILE_SEGMENTS) * 2 * 5
