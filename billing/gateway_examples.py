"""Real examples in the gateway's OpenAPI document (issue 22): a request for every
endpoint, the answer for success, and every error code each status can carry (with the
English message; under Accept-Language: zh-hans the message is Chinese, the code the
same). Added to the generated schema by billing.api, so the endpoints stay as they are."""

SERVICE_KEY = "sk-live-3f9a2c7e5b1d4a8f9c0e6b2d7a1f4c3e"  # an API key as the gateway sees it

REQUESTS = {
    ("/authorize", "post"): {"api_key": SERVICE_KEY, "account_id": 1042, "model": "glm-4"},
    ("/usage", "post"): {
        "request_id": "req-20261208-000001",
        "api_key": SERVICE_KEY,
        "model": "glm-4",
        "amount": "0.012500",
        "currency": "CNY",
        "occurred_at": "2026-12-08T10:15:30+08:00",
        "input_tokens": 1200,
        "output_tokens": 350,
    },
    ("/usage/batch", "post"): {
        "events": [
            {
                "request_id": "req-20261208-000002",
                "api_key": SERVICE_KEY,
                "model": "glm-4",
                "amount": "0.012500",
                "input_tokens": 1200,
                "output_tokens": 350,
            },
            {
                "request_id": "req-20261208-000003",
                "api_key": SERVICE_KEY,
                "model": "deepseek-chat",
                "amount": "0.003",
            },
        ]
    },
}

SUCCESS = {
    ("/authorize", "post"): {
        "allowed": True,
        "code": "ok",
        "available": "128.500000",
        "currency": "CNY",
        "limit": None,
    },
    ("/usage", "post"): {
        "request_id": "req-20261208-000001",
        "status": "accepted",
        "amount": "0.012500",
        "currency": "CNY",
    },
    ("/usage/batch", "post"): {
        "accepted": 1,
        "replayed": 0,
        "errors": 1,
        "results": [
            {
                "index": 0,
                "request_id": "req-20261208-000002",
                "status": "accepted",
                "amount": "0.012500",
            },
            {
                "index": 1,
                "request_id": "req-20261208-000003",
                "status": "error",
                "code": "key_locked",
                "message": "This API key is locked by the platform.",
            },
        ],
    },
    ("/usage/{request_id}", "get"): {
        "request_id": "req-20261208-000001",
        "state": "settled",
        "amount": "0.012500",
        "currency": "CNY",
        "model": "glm-4",
        "received_at": "2026-12-08T02:15:30.120000+00:00",
        "occurred_at": "2026-12-08T02:15:30+00:00",
        "settled_at": "2026-12-08T02:15:31.004000+00:00",
        "transaction_id": 88231,
        "split": {
            "trial": "0.012500",
            "discount": "0.000000",
            "cash": "0.000000",
            "arrears": "0.000000",
        },
        "sources": [{"bucket": "trial", "grant": 12, "amount": "0.012500"}],
    },
}

MESSAGES = {
    "unauthorized": "A valid service token is required.",
    "too_many_auth_failures": "Too many calls with a wrong token; wait.",
    "body_too_large": "The request body is larger than the portal accepts.",
    "invalid_json": "The request body is not valid JSON.",
    "invalid_request": "amount: Field required",
    "invalid_amount": "Write the amount as a plain number, e.g. 100 or 99.50.",
    "too_many_decimals": "At most 6 decimal places are allowed.",
    "non_positive_amount": "The amount must be greater than zero.",
    "wrong_currency": "Only CNY is accepted, not USD.",
    "amount_too_large": "One call may be charged at most 1000 CNY.",
    "invalid_request_id": "request_id contains control characters.",
    "invalid_model": "model contains control characters.",
    "invalid_occurred_at": "occurred_at needs a UTC offset.",
    "invalid_tokens": "input_tokens must be a non-negative integer.",
    "foreign_api_key": "This API key belongs to another account.",
    "key_revoked": "This API key was revoked.",
    "key_locked": "This API key is locked by the platform.",
    "account_suspended": "The account is suspended.",
    "account_locked": "The account is locked (third-party dispute).",
    "account_frozen": "The account is frozen by order of an authority.",
    "account_terminated": "The account is terminated.",
    "spend_limit_exceeded": "A hard spend limit is reached until its period ends.",
    "unknown_api_key": "No such API key.",
    "unknown_request_id": "No usage event has this request id.",
    "request_id_conflict": "This request id was already used for another call.",
    "batch_too_large": "At most 5000 events per batch.",
    "empty_batch": "The batch has no events.",
    "retry": "The ledger is busy; please retry.",
}

_AMOUNT = ["invalid_amount", "too_many_decimals", "non_positive_amount", "wrong_currency"]
_EVENT = [
    *_AMOUNT,
    "amount_too_large",
    "invalid_request_id",
    "invalid_model",
    "invalid_occurred_at",
    "invalid_tokens",
]
_STOPPED = [
    "key_revoked",
    "key_locked",
    "account_suspended",
    "account_locked",
    "account_frozen",
    "account_terminated",
    "spend_limit_exceeded",
]
# Every endpoint: the token check (401, then 429 for an address that keeps failing) and
# the body limit (413).
_COMMON = {401: ["unauthorized"], 413: ["body_too_large"], 429: ["too_many_auth_failures"]}

ERRORS = {
    ("/authorize", "post"): {400: ["invalid_json", "invalid_request"]},
    ("/usage", "post"): {
        400: ["invalid_json", "invalid_request", *_EVENT],
        403: ["foreign_api_key", *_STOPPED],
        404: ["unknown_api_key"],
        409: ["request_id_conflict"],
        503: ["retry"],
    },
    ("/usage/batch", "post"): {
        400: ["invalid_json", "invalid_request", "empty_batch"],
        413: ["batch_too_large"],
        503: ["retry"],
    },
    ("/usage/{request_id}", "get"): {404: ["unknown_request_id"]},
}

# /authorize answers 200 with allowed=false and a code when a key may not be used now,
# and 429 with the limit when a hard spend limit is reached (R-USE-7).
REFUSED = {
    "unknown_api_key": "0.000000",
    "key_locked": "0.000000",
    "account_frozen": "0.000000",
    "insufficient_balance": "0.000000",
}
LIMITED = {
    "allowed": False,
    "code": "spend_limit_exceeded",
    "available": "42.000000",
    "currency": "CNY",
    "limit": {
        "scope": "account",
        "period": "month",
        "limit": "500.00",
        "spent": "500.01",
        "resets_at": "2026-12-31T16:00:00+00:00",
    },
}


def _path_key(path: str, prefix: str) -> str:
    key = path[len(prefix) :] if prefix and path.startswith(prefix) else path
    return key.replace("{path:request_id}", "{request_id}")


def _error_schema():
    return {"$ref": "#/components/schemas/ErrorOut"}


def add_examples(schema: dict) -> dict:
    """Fill the generated OpenAPI document with the examples above (in place)."""
    paths = schema.get("paths", {})
    prefix = ""
    for path in paths:
        if path.endswith("/authorize"):
            prefix = path[: -len("/authorize")]
    for path, operations in paths.items():
        for method, op in operations.items():
            key = (_path_key(path, prefix), method)
            if key in REQUESTS:
                content = op.setdefault("requestBody", {}).setdefault("content", {})
                content.setdefault("application/json", {})["example"] = REQUESTS[key]
            responses = op.setdefault("responses", {})
            if key in SUCCESS:
                ok = responses.setdefault("200", {"description": "OK"})
                examples = {"ok": {"value": SUCCESS[key]}}
                if key[0] == "/authorize":
                    for code, available in REFUSED.items():
                        examples[code] = {
                            "value": {
                                "allowed": False,
                                "code": code,
                                "available": available,
                                "currency": "CNY",
                                "limit": None,
                            }
                        }
                ok.setdefault("content", {}).setdefault("application/json", {})["examples"] = (
                    examples
                )
            errors = {**_COMMON, **ERRORS.get(key, {})}
            for status, codes in errors.items():
                if status == 413 and key in ERRORS and 413 in ERRORS[key]:
                    codes = sorted({*codes, "body_too_large"})
                answer = responses.setdefault(str(status), {"description": "Error"})
                media = answer.setdefault("content", {}).setdefault("application/json", {})
                media.setdefault("schema", _error_schema())
                media["examples"] = {
                    code: {"value": {"code": code, "message": MESSAGES[code]}} for code in codes
                }
                if key[0] == "/authorize" and status == 429:
                    media["examples"]["spend_limit_exceeded"] = {"value": LIMITED}
    return schema
