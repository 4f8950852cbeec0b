"""The model gateway's JSON API (R-USE-1), mounted at /api/v1/gateway/.

Thin: parse, call billing services, render. Authenticated by the service
token from settings.GATEWAY_SERVICE_TOKEN (constant-time comparison). Every
error is JSON `{"code": …, "message": …}` with a stable code. OpenAPI at
/api/v1/gateway/openapi.json, browsable docs at /api/v1/gateway/docs.
"""

from __future__ import annotations

import functools
import hmac
import json
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext, gettext_noop
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import APIKeyHeader, HttpBearer
from pydantic import BaseModel

from core.money import parse_amount
from core.text import UNSAFE_CHARACTERS, has_unsafe_characters

from .micro import micro_str, to_micro
from .selectors import usage_event_for
from .services.authorization import REFUSAL_MESSAGES, authorize, resolve_api_keys
from .services.engine import LedgerError
from .services.metering import ReportedUsage, record_usage


def batch_limit() -> int:
    """The most events one batch may carry: settings.GATEWAY_BATCH_LIMIT when the settings
    define it, else 5,000; looked up per request rather than frozen at import."""
    return int(getattr(settings, "GATEWAY_BATCH_LIMIT", 5000))


def _json_fraction(literal: str):
    """A JSON number with a fraction or exponent: Decimal when written plainly, else the
    literal text, which the amount parser then refuses like the string "1e2" (an exponent
    is never guessed at)."""
    if "e" in literal or "E" in literal:
        return literal
    return Decimal(literal)


def _json_integer(literal: str):
    return int(literal) if len(literal) <= 40 else literal  # no 4,300-digit conversions


class _DecimalParser(Parser):
    """JSON numbers become Decimal, never float (an amount must stay exact)."""

    def parse_body(self, request):
        try:
            return json.loads(request.body, parse_float=_json_fraction, parse_int=_json_integer)
        except RecursionError as exc:  # absurdly deep nesting: a JSON error, not a crash
            raise ValueError("too deeply nested") from exc


def _docs_guard(view):
    """The docs page and the schema: open where settings.GATEWAY_DOCS_PUBLIC (development),
    otherwise only for the service token or a logged-in staff member (401 JSON to anyone else)."""

    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if not getattr(settings, "GATEWAY_DOCS_PUBLIC", False):
            user = getattr(request, "user", None)
            header = request.headers.get("Authorization", "")
            bearer = header[7:] if header.lower().startswith("bearer ") else None
            given = bearer or request.headers.get("X-Service-Token")
            if not (_token_ok(given) or (user is not None and user.is_active and user.is_staff)):
                return JsonResponse(
                    {"code": "unauthorized", "message": gettext(_NO_TOKEN)},
                    status=401,
                )
        return view(request, *args, **kwargs)

    return guarded


def _token_ok(given: str | None) -> bool:
    expected = settings.GATEWAY_SERVICE_TOKEN
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


# Token failures are counted per client address in the cache: past
# GATEWAY_AUTH_FAILURE_LIMIT a minute, that address gets 429 without its token even being
# compared (no guessing), and staff get one alert per address and window.
def _client(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "-"


def _failures_key(request) -> str:
    return f"gateway-auth-failures:{_client(request)}"


def _throttled(request) -> bool:
    limit = int(getattr(settings, "GATEWAY_AUTH_FAILURE_LIMIT", 20))
    return cache.get(_failures_key(request), 0) >= limit


def _count_failure(request) -> int:
    key = _failures_key(request)
    window = int(getattr(settings, "GATEWAY_AUTH_WINDOW_SECONDS", 60))
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    try:
        from ops.metrics import GATEWAY_AUTH_FAILURES

        GATEWAY_AUTH_FAILURES.inc()
    except ImportError:  # pragma: no cover
        pass
    if count == int(getattr(settings, "GATEWAY_AUTH_FAILURE_LIMIT", 20)):
        from ops.services import raise_alert

        raise_alert(
            "gateway_auth_failures",
            f"{count} gateway calls with a missing or wrong service token from "
            f"{_client(request)} within {window} s; that address is refused for now.",
            {"address": _client(request), "failures": count},
            key=f"gateway-auth:{_client(request)}",
        )
    return count


class _Throttled(Exception):
    pass


class _BearerToken(HttpBearer):
    def authenticate(self, request, token):
        if _throttled(request):
            raise _Throttled()
        return "gateway" if _token_ok(token) else None


class _HeaderToken(APIKeyHeader):
    param_name = "X-Service-Token"

    def authenticate(self, request, key):
        if _throttled(request):
            raise _Throttled()
        return "gateway" if _token_ok(key) else None


api = NinjaAPI(
    title="Model gateway API",
    version="1",
    description=(
        "Authorize API keys and report usage for charging. Authenticate with "
        "`Authorization: Bearer <service token>` (or `X-Service-Token`). Amounts are "
        "CNY decimal strings with at most 6 places. Errors: `{code, message}`."
    ),
    urls_namespace="gateway",
    auth=[_BearerToken(), _HeaderToken()],
    parser=_DecimalParser(),
    docs_url="/docs",
    docs_decorator=_docs_guard,
    openapi_url="/openapi.json",
)


class ErrorOut(Schema):
    code: str
    message: str


# Messages follow the caller's Accept-Language (LocaleMiddleware); codes never change.
# Every message is an English msgid translated here, at the edge: the services' fixed
# texts (authorization.REFUSAL_MESSAGES, metering.CONFLICT, …) are marked where they
# are written, the API's own below, and texts with figures are translated where made.
_NO_TOKEN = gettext_noop("A valid service token is required.")
_NO_KEY = gettext_noop("No such API key.")
# raised below this layer without a marker (billing.services.engine.retry_transaction)
_BUSY = gettext_noop("The ledger is busy; please retry.")


def _say(message) -> str:
    return gettext(str(message)) if message else message


def _error(request, status, code, message):
    return api.create_response(request, {"code": code, "message": _say(message)}, status=status)


@api.exception_handler(AuthenticationError)
def _unauthorized(request, exc):
    if _throttled(request):
        return _too_many(request, exc)
    _count_failure(request)
    return _error(request, 401, "unauthorized", _NO_TOKEN)


@api.exception_handler(_Throttled)
def _too_many(request, exc):
    response = _error(
        request,
        429,
        "too_many_auth_failures",
        gettext_noop("Too many calls with a wrong token; wait."),
    )
    response["Retry-After"] = str(int(getattr(settings, "GATEWAY_AUTH_WINDOW_SECONDS", 60)))
    return response


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return _error(
        request,
        413,
        "body_too_large",
        gettext_noop("The request body is larger than the portal accepts."),
    )


@api.exception_handler(HttpError)
def _http_error(request, exc):
    if isinstance(exc.__cause__, RequestDataTooBig):
        return _too_big(request, exc.__cause__)
    if isinstance(exc.__cause__, ValueError):  # json.JSONDecodeError is a ValueError
        return _error(
            request, 400, "invalid_json", gettext_noop("The request body is not valid JSON.")
        )
    return _error(request, exc.status_code, "http_error", str(exc))


@api.exception_handler(NinjaValidationError)
def _invalid(request, exc):
    def place(loc):
        return ".".join(str(p) for p in loc if p not in ("body", "payload")) or "body"

    where = "; ".join(f"{place(e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors[:10])
    return _error(
        request, 400, "invalid_request", where or gettext_noop("The request is malformed.")
    )


class _Refused(Exception):
    def __init__(self, status, code, message):
        self.status, self.code, self.message = status, code, message


@api.exception_handler(_Refused)
def _refused(request, exc):
    return _error(request, exc.status, exc.code, exc.message)


# ---------------------------------------------------------------- schemas


class AuthorizeIn(BaseModel):
    api_key: str = Field(..., max_length=200, description="The raw API key the caller presented.")
    account_id: int | None = Field(
        None, description="Optional: the balance account the gateway expects the key to belong to."
    )
    model: str | None = Field(
        None,
        max_length=100,
        description="Optional: the model to be called; its resource packages count as available.",
    )


class LimitOut(Schema):
    scope: str = Field(..., description="account or key")
    period: str = Field(..., description="month or day (Beijing time)")
    limit: str
    spent: str
    resets_at: str


class AuthorizeOut(Schema):
    allowed: bool
    code: str = Field(
        ...,
        description="ok, or why not: unknown_api_key, foreign_api_key, key_revoked, key_locked, "
        "account_suspended, account_locked, account_frozen, account_terminated, arrears, "
        "insufficient_balance, spend_limit_exceeded (HTTP 429)",
    )
    available: str
    currency: str = "CNY"
    limit: LimitOut | None = Field(
        None, description="spend_limit_exceeded: the hard limit reached and when it resets."
    )


class UsageIn(BaseModel):
    request_id: str = Field(..., max_length=200, description="Unique per call; replays are safe.")
    api_key: str = Field(..., max_length=200)
    model: str = Field(..., max_length=100)
    amount: Decimal | str = Field(..., description="CNY, > 0, at most 6 decimal places.")
    currency: str = "CNY"
    account_id: int | None = None
    occurred_at: datetime | None = Field(
        None, description="When the call happened (ISO 8601 with offset); default: received."
    )
    # Any JSON value, checked by _tokens: a bad count answers `invalid_tokens`, not the
    # schema's generic invalid_request.
    input_tokens: object | None = Field(
        None, description="Optional: prompt tokens of the call (a non-negative integer)."
    )
    output_tokens: object | None = Field(
        None, description="Optional: completion tokens of the call (a non-negative integer)."
    )


class SplitOut(Schema):
    trial: str
    discount: str
    cash: str
    arrears: str
    package: str = "0.000000"


class UsageOut(Schema):
    request_id: str
    status: str = Field(..., description="accepted, or replayed (the first event's answer)")
    amount: str
    currency: str = "CNY"


class UsageStateOut(Schema):
    request_id: str
    state: str = Field(..., description="pending (metered, not charged yet) or settled")
    amount: str
    currency: str = "CNY"
    model: str
    received_at: str
    occurred_at: str | None = None
    settled_at: str | None = None
    transaction_id: int | None = None
    split: SplitOut | None = Field(None, description="Once settled: how much each bucket paid.")
    sources: list[dict] = Field(
        default_factory=list, description="Once settled: each grant and lot drawn on."
    )


class BatchIn(BaseModel):
    events: list[UsageIn]


class BatchItemOut(Schema):
    index: int
    request_id: str
    status: str = Field(..., description="accepted, replayed or error")
    code: str | None = None
    message: str | None = None
    amount: str | None = None


class BatchOut(Schema):
    accepted: int
    replayed: int
    errors: int
    results: list[BatchItemOut]


# ---------------------------------------------------------------- helpers


def _money_str(micro: int) -> str:
    return micro_str(micro)


def _state_out(event) -> dict:
    settled = event.transaction_id is not None
    return {
        "request_id": event.request_id,
        "state": "settled" if settled else "pending",
        "amount": _money_str(event.amount_micro),
        "currency": "CNY",
        "model": event.model,
        "received_at": event.created_at.isoformat(),
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "settled_at": event.settled_at.isoformat() if event.settled_at else None,
        "transaction_id": event.transaction_id,
        "split": {
            "trial": _money_str(event.trial_micro),
            "discount": _money_str(event.discount_micro),
            "cash": _money_str(event.cash_micro),
            "arrears": _money_str(event.arrears_micro),
            "package": _money_str(event.package_micro),
        }
        if settled
        else None,
        "sources": _named_sources(event.split) if settled else [],
    }


def _named_sources(split):
    """The split with each resource package's name (R-PKG-3: the split names it)."""
    ids = [s["package"] for s in split if s.get("package")]
    if not ids:
        return split
    from .selectors import package_names

    names = package_names(ids)
    return [
        {**s, "package_name": names.get(s["package"], "")} if s.get("package") else s for s in split
    ]


def _parse_usage_amount(event: UsageIn) -> int:
    """Amount → micro-units or _Refused with the stable code from core.money."""
    try:
        money = parse_amount(event.amount, places=6, currency=event.currency)
    except DjangoValidationError as exc:
        raise _Refused(400, exc.code or "invalid_amount", exc.messages[0])
    if money.amount > settings.GATEWAY_MAX_CHARGE:
        raise _Refused(
            400,
            "amount_too_large",
            gettext("One call may be charged at most %(max)s CNY.")
            % {"max": settings.GATEWAY_MAX_CHARGE},
        )
    return to_micro(money)


# control and invisible characters: the one check in core.text (issue 24 point 7)
_CONTROL = UNSAFE_CHARACTERS


def _check_text(event) -> None:
    """request_id and model: present, and free of control characters, or a stable code."""
    for field in ("request_id", "model"):
        value = getattr(event, field)
        if _CONTROL.search(value):
            raise _Refused(
                400,
                f"invalid_{field}",
                gettext("%(field)s contains control characters.") % {"field": field},
            )
        if not value.strip():
            raise _Refused(
                400, "invalid_request", gettext_noop("request_id and model are required.")
            )
    if _CONTROL.search(event.api_key):
        raise _Refused(404, "unknown_api_key", _NO_KEY)


def _key_for(event, keys) -> object:
    key = keys.get(event.api_key)
    if key is None:
        raise _Refused(404, "unknown_api_key", _NO_KEY)
    if event.account_id is not None and key.account_id != event.account_id:
        raise _Refused(
            403, "foreign_api_key", gettext_noop("This API key belongs to another account.")
        )
    return key


# ---------------------------------------------------------------- endpoints


@api.post(
    "/authorize",
    response={200: AuthorizeOut, 400: ErrorOut, 401: ErrorOut, 429: AuthorizeOut},
    exclude_none=True,  # `limit` only when a spend limit refused
)
def authorize_key(request: HttpRequest, payload: AuthorizeIn):
    """May this API key call a model now? Answers allowed, or refused with a stable code,
    plus the available balance."""
    key = resolve_api_keys([payload.api_key]).get(payload.api_key)
    if key is not None and payload.account_id is not None and key.account_id != payload.account_id:
        return {"allowed": False, "code": "foreign_api_key", "available": "0.000000"}
    result = authorize(key, payload.model)
    body = {
        "allowed": result.allowed,
        "code": result.code,
        "available": str(result.available.amount),
    }
    if result.limit is not None:  # R-USE-7: a hard spend limit reached
        lim = result.limit
        body["limit"] = {
            "scope": lim["scope"],
            "period": lim["period"],
            "limit": str(lim["limit"].amount),
            "spent": str(lim["spent"].amount),
            "resets_at": lim["resets_at"].isoformat(),
        }
        return Status(429, body)
    return body


_STATUS = {"request_id_conflict": 409, "retry": 503}


def _event_for(ev: UsageIn, keys, amounts: dict | None = None) -> ReportedUsage:
    """Parse one event or raise _Refused with its stable code. `amounts` (a batch's
    memo) keeps each distinct amount's answer: a batch of 1,000 calls carries a handful
    of prices, and parsing one into Money costs more than the rest of the event."""
    _check_text(ev)
    if amounts is None:
        micro = _parse_usage_amount(ev)
    else:
        # str() of a Decimal keeps its digits and exponent: equal text, equal answer
        memo_key = (type(ev.amount), str(ev.amount), ev.currency)
        answer = amounts.get(memo_key)
        if answer is None:
            try:
                answer = _parse_usage_amount(ev)
            except _Refused as exc:
                answer = exc
            amounts[memo_key] = answer
        if isinstance(answer, _Refused):
            raise _Refused(answer.status, answer.code, answer.message)
        micro = answer
    key = _key_for(ev, keys)
    if ev.occurred_at is not None and ev.occurred_at.tzinfo is None:
        raise _Refused(400, "invalid_occurred_at", gettext_noop("occurred_at needs a UTC offset."))
    return ReportedUsage(
        ev.request_id,
        key,
        ev.model,
        micro,
        ev.occurred_at,
        _tokens(ev.input_tokens, "input_tokens"),
        _tokens(ev.output_tokens, "output_tokens"),
    )


_MAX_TOKENS = 2**63 - 1  # BIGINT


def _tokens(value, field) -> int | None:
    """An optional token count: absent/null, or a non-negative JSON integer (not a
    string, a fraction or a boolean), else `invalid_tokens`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TOKENS:
        raise _Refused(
            400,
            "invalid_tokens",
            gettext("%(field)s must be a non-negative integer.") % {"field": field},
        )
    return value


@api.post(
    "/usage",
    response={
        200: UsageOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        503: ErrorOut,
    },
)
def report_usage(request: HttpRequest, payload: UsageIn):
    """Meter one call: `accepted` once the event is stored (settled against the balance
    seconds later), `replayed` for a request id seen before with the same key and
    amount, 409 `request_id_conflict` otherwise. Nothing is stored when refused."""
    event = _event_for(payload, resolve_api_keys([payload.api_key]))
    try:
        (result,) = record_usage([event])
    except LedgerError as exc:  # still aborted after the retries: nothing was stored
        raise _Refused(_STATUS.get(exc.code, 400), exc.code, exc.messages[0])
    if result.status == "error":
        status = 403 if result.code in REFUSAL_MESSAGES else _STATUS.get(result.code, 400)
        raise _Refused(status, result.code, result.message)
    return JsonResponse(
        {
            "request_id": result.request_id,
            "status": result.status,
            "amount": _money_str(result.micro),
            "currency": "CNY",
        }
    )


@api.post(
    "/usage/batch",
    response={200: BatchOut, 400: ErrorOut, 401: ErrorOut, 413: ErrorOut, 503: ErrorOut},
)
def report_usage_batch(request: HttpRequest, payload: BatchIn):
    """Meter many calls (up to GATEWAY_BATCH_LIMIT, default 5,000) with one INSERT and one
    commit. One result per event, in order; a bad event gets its own error and the
    others are stored."""
    limit = batch_limit()
    if len(payload.events) > limit:
        raise _Refused(
            413,
            "batch_too_large",
            gettext("At most %(limit)s events per batch.") % {"limit": limit},
        )
    if not payload.events:
        raise _Refused(400, "empty_batch", gettext_noop("The batch has no events."))
    keys = resolve_api_keys({ev.api_key for ev in payload.events})
    results: list[dict | None] = [None] * len(payload.events)
    good, positions, amounts = [], [], {}
    for i, ev in enumerate(payload.events):
        try:
            good.append(_event_for(ev, keys, amounts))
        except _Refused as exc:
            results[i] = {
                "index": i,
                "request_id": ev.request_id,
                "status": "error",
                "code": exc.code,
                "message": _say(exc.message),
            }
            continue
        positions.append(i)
    if good:
        try:
            recorded = record_usage(good)
        except LedgerError as exc:
            raise _Refused(_STATUS.get(exc.code, 400), exc.code, exc.messages[0])
        for i, r in zip(positions, recorded, strict=True):
            item = {"index": i, "request_id": r.request_id, "status": r.status}
            if r.status == "error":
                item.update(code=r.code, message=_say(r.message))
            else:
                item["amount"] = _money_str(r.micro)
            results[i] = item
    statuses = [r["status"] for r in results]
    # rendered directly: the schema above documents it; validating 1,000 items again costs
    return JsonResponse(
        {
            "accepted": statuses.count("accepted"),
            "replayed": statuses.count("replayed"),
            "errors": statuses.count("error"),
            "results": results,
        }
    )


@api.get("/usage/{path:request_id}", response={200: UsageStateOut, 401: ErrorOut, 404: ErrorOut})
def usage_state(request: HttpRequest, request_id: str):
    """An event's state: pending, or settled with what paid for it (each bucket, and
    each grant and lot drawn on). Registered after `usage/batch`, which it would
    otherwise shadow; the path converter lets a request id hold a slash."""
    # a request id no event can have (NUL, control or invisible characters) is simply
    # unknown: PostgreSQL refuses NUL in a text comparison (issue 24 point 5)
    event = None if has_unsafe_characters(request_id) else usage_event_for(request_id)
    if event is None:
        raise _Refused(
            404, "unknown_request_id", gettext_noop("No usage event has this request id.")
        )
    return JsonResponse(_state_out(event))


# The OpenAPI document with a real example for every endpoint and every error code per
# status (billing.gateway_examples), added to what django-ninja generates.
_generated_schema = api.get_openapi_schema


def _schema_with_examples(*args, **kwargs):
    from .gateway_examples import add_examples

    return add_examples(_generated_schema(*args, **kwargs))


api.get_openapi_schema = _schema_with_examples
