"""The gateway's OpenAPI document shows a real example for every endpoint and every
error code per status (issue 22, R-USE-1)."""

import json

import pytest

from core.money import parse_amount
from tests.ledger.http import TOKEN


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture
def schema(client, db):
    resp = client.get("/api/v1/gateway/openapi.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert resp.status_code == 200
    return json.loads(resp.content)


def test_every_endpoint_and_status_has_examples(schema):
    """R-USE-1: each operation has a request example (POST), a 200 example, and every
    error status lists its codes with an example body whose code is that code."""
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            if method == "post":
                example = op["requestBody"]["content"]["application/json"]["example"]
                assert example, path
            for status, answer in op["responses"].items():
                examples = answer["content"]["application/json"]["examples"]
                assert examples, (path, status)
                if status != "200":
                    for code, body in examples.items():
                        assert body["value"]["code"] == code
            assert {"401", "413", "429"} <= set(op["responses"]), path


def test_example_amounts_are_valid(schema):
    """R-USE-1: the documented amounts are amounts the gateway accepts (never 0)."""
    usage = next(p for p in schema["paths"] if p.endswith("/usage"))
    example = schema["paths"][usage]["post"]["requestBody"]["content"]["application/json"]
    assert parse_amount(example["example"]["amount"], places=6).amount > 0
    codes = schema["paths"][usage]["post"]["responses"]["400"]["content"]["application/json"]
    assert {"invalid_tokens", "too_many_decimals"} <= set(codes["examples"])
