"""A schemathesis fuzz of the user API's OpenAPI schema (issue 27) over real HTTP, served
as config/wsgi.py serves it (the lean path): no answer may be a 500 or anything but
JSON, with a real key and with the generator's own (unknown) ones. Driven with
hypothesis directly, as tests/hardening/test_gateway_fuzz.py explains."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from accounts.services import create_api_key
from billing.services.ledger import credit_lot
from tests.factories import cny
from tests.lean import lean_live_server

EXAMPLES = 30  # per operation and mode: 4 operations x 2 modes x 30


@pytest.mark.django_db(transaction=True)
def test_me_api_answers_every_generated_request_without_a_500(user, settings_):
    """Issue 27: whatever the generator sends, a JSON answer below 500."""
    account = user.balance_account
    credit_lot(account, cny("3"), channel="alipay", idempotency_key="fuzz")
    _key, raw = create_api_key(user, name="fuzz")
    auth = {"Authorization": f"Bearer {raw}"}
    with lean_live_server() as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/me/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path.removeprefix("/api/v1/me") for op in operations} >= {
            "/balance",
            "/usage",
            "/key",
        }
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
                        return  # no valid request line: the HTTP server refuses it
                    response = case.call(base_url=server.url, headers=auth)
                    seen["requests"] += 1
                    seen["statuses"].add(response.status_code)
                    assert response.status_code < 500, (case.query, response.text[:500])
                    content_type = (response.headers.get("content-type") or [""])[0]
                    assert content_type.startswith("application/json"), content_type

                fuzz()
    assert seen["requests"] >= 4 * 2 * 10
    assert 200 in seen["statuses"] and seen["statuses"] & {400, 404}


@pytest.fixture
def settings_(settings):
    from django.core.cache import cache

    cache.clear()  # no failure count of an earlier test from this address
    settings.ME_API_RATE_PER_MINUTE = 100_000  # the fuzz is one key's burst
    settings.GATEWAY_AUTH_FAILURE_LIMIT = 100_000  # and its wrong keys no attack
    return settings
