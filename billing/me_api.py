"""The user's own API (issue 27), mounted at /api/v1/me/ on the lean path (billing.lean).

Read-only answers for the user's programs, authenticated by the user's API key as a
Bearer token (the gateway's key hash lookup, accounts.selectors.gateway_keys): the
balance (the balance page's figures, from the same billing.selectors.balance_summary,
and `is_available` from the same billing.services.authorization.verdict `authorize`
answers with), usage totals from the daily rollup, one event by request id (this
account's only), and the key itself. A revoked key gets 401; a locked key or account
still reads. Errors are `{code, message}` with stable codes and messages in the caller's
language (Accept-Language); every answer carries `Cache-Control: no-store`; calls are
limited per key (ME_API_RATE_PER_MINUTE) and failed keys per address (the gateway's
GATEWAY_AUTH_FAILURE_LIMIT, with a staff alert). No personal data is ever answered.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from types import SimpleNamespace

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, NinjaAPI, Query, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from accounts.api_keys import hash_secret
from accounts.models import ApiKeyState, BalanceAccount
from accounts.selectors import api_key_card, gateway_keys, key_prefixes

from .api import _CONTROL, _state_out
from .micro import micro_str, to_micro
from .selectors import (
    balance_api_figures,
    balance_summary,
    spend_limits_of,
    usage_event_for,
    usage_totals,
)
from .services.authorization import verdict

CURRENCY = "CNY"


def _client(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "-"


class _Refused(Exception):
    def __init__(self, status, code, message, retry_after=None):
        super().__init__(code)
        self.status, self.code, self.message, self.retry_after = (
            status,
            code,
            message,
            retry_after,
        )


# ---------------------------------------------------------------- limits


def _failures_key(request) -> str:
    return f"me-api-auth-failures:{_client(request)}"


def _count_failure(request) -> None:
    """An unknown, missing or revoked key: counted per address like the gateway's wrong
    service tokens; at the limit one staff alert per address and window."""
    from .metrics import ME_API_AUTH_FAILURES

    ME_API_AUTH_FAILURES.inc()
    key = _failures_key(request)
    window = int(getattr(settings, "GATEWAY_AUTH_WINDOW_SECONDS", 60))
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired meanwhile, or the cache is unreachable
        cache.set(key, 1, timeout=window)
        count = 1
    if count == int(getattr(settings, "GATEWAY_AUTH_FAILURE_LIMIT", 20)):
        from ops.services import raise_alert

        raise_alert(
            "me_api_auth_failures",
            f"{count} calls to the user API with a missing, unknown or revoked API key "
            f"from {_client(request)} within {window} s; that address is refused for now.",
            {"address": _client(request), "failures": count},
            key=f"me-api-auth:{_client(request)}",
        )


def _counters(request, token) -> tuple[int, int | None, int]:
    """(this address's invalid-key failures in the window, this key's calls this minute
    with this one, seconds to the minute's end), read and counted in ONE cache round
    trip (a pipeline on the cache's Redis pool). The per-key counter is keyed by the
    key's hash, so it is counted before the key is looked up; the count is None when
    the cache cannot count (answer rather than refuse, R-USE-6)."""
    now = time.time()
    window = int(now // 60)
    wait = max(1, int((window + 1) * 60 - now) + 1)
    rate_name = f"me-api-rate:{hash_secret(token)[:32]}:{window}"
    fail_name = _failures_key(request)
    try:
        client = cache._cache.get_client(rate_name, write=True)  # Django's RedisCache
    except AttributeError:  # no Redis configured (development): the cache API
        try:
            count = cache.incr(rate_name)
        except ValueError:
            count = 1 if cache.add(rate_name, 1, timeout=61) else None
        return int(cache.get(fail_name, 0)), count, wait
    if time.monotonic() < getattr(cache, "_down_until", 0.0):  # core.cache's back-off
        return 0, None, wait
    try:
        pipe = client.pipeline(transaction=False)
        pipe.get(cache.make_and_validate_key(fail_name))
        key = cache.make_and_validate_key(rate_name)
        pipe.incr(key)
        pipe.expire(key, 61, nx=True)
        failures, count, _set = pipe.execute()
    except Exception:  # noqa: BLE001 - Redis down: answer rather than refuse (R-USE-6)
        from core.cache import RETRY_AFTER

        cache._down_until = time.monotonic() + RETRY_AFTER  # as core.cache backs off
        return 0, None, wait
    return int(failures or 0), int(count), wait


class _ApiKeyBearer(HttpBearer):
    """The user's API key as `Authorization: Bearer sk-…`."""

    def authenticate(self, request, token):
        failures, calls, wait = _counters(request, token)
        if failures >= int(getattr(settings, "GATEWAY_AUTH_FAILURE_LIMIT", 20)):
            raise _Refused(
                429,
                "too_many_auth_failures",
                _("Too many calls with an invalid API key; wait."),
                retry_after=int(getattr(settings, "GATEWAY_AUTH_WINDOW_SECONDS", 60)),
            )
        row = gateway_keys([token]).get(token)
        if row is None:
            return None
        key_id, account_id, state, standing, _threshold = row
        if state == ApiKeyState.REVOKED:
            _count_failure(request)
            raise _Refused(401, "key_revoked", _("This API key was revoked."))
        if calls is not None and calls > settings.ME_API_RATE_PER_MINUTE:
            raise _Refused(429, "rate_limited", _("Too many calls with this API key; wait."), wait)
        return SimpleNamespace(pk=key_id, account_id=account_id, state=state, standing=standing)


DESCRIPTION = """
Read-only answers about **your own** account for your programs, authenticated by one of
your API keys. 面向您自己的程序的只读接口：用您的 API 密钥鉴权，查询余额、用量和密钥本身。

**Authentication 鉴权** — `Authorization: Bearer sk-…` (the key you call models with
用调用模型的同一个密钥). A revoked key gets 401 吊销的密钥返回 401; a locked key or
account still reads 被锁定的密钥或账户仍可查询。

**Amounts 金额** — CNY strings with six decimals 人民币，六位小数的字符串.
**Errors 错误** — `{"code": …, "message": …}`; `code` is stable, `message` follows
`Accept-Language` (`zh-hans` or `en`) `code` 稳定不变，`message` 随 `Accept-Language` 的语言.
**Limits 限流** — per key and minute 每个密钥每分钟有调用上限: over it, `429` with
`Retry-After` 超出返回 `429` 和 `Retry-After`. Answers are never cached 应答带
`Cache-Control: no-store`.

curl:

```sh
curl -H "Authorization: Bearer $API_KEY" https://portal.example/api/v1/me/balance
curl -H "Authorization: Bearer $API_KEY" -H "Accept-Language: en" \\
  "https://portal.example/api/v1/me/usage?start=2026-11-01&end=2026-11-30&by=model"
```

Python:

```python
import requests

r = requests.get(
    "https://portal.example/api/v1/me/balance",
    headers={"Authorization": f"Bearer {api_key}", "Accept-Language": "zh-hans"},
    timeout=10,
)
balance = r.json()
if not balance["is_available"]:
    # 余额不足或账户受限时停止任务 stop your jobs before the money runs out
    print(balance["code"], balance["available"])
```
"""

api = NinjaAPI(
    title="Account API (your API key)",
    version="1",
    description=DESCRIPTION,
    urls_namespace="me",
    auth=_ApiKeyBearer(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _error(request, status, code, message, retry_after=None):
    response = api.create_response(request, {"code": code, "message": message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@api.exception_handler(_Refused)
def _refused(request, exc):
    return _error(request, exc.status, exc.code, exc.message, exc.retry_after)


@api.exception_handler(AuthenticationError)
def _unauthorized(request, exc):
    _count_failure(request)
    return _error(request, 401, "invalid_api_key", _("A valid API key is required."))


@api.exception_handler(NinjaValidationError)
def _invalid(request, exc):
    where = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'query')}: {e.get('msg')}"
        for e in exc.errors[:10]
    )
    return _error(
        request, 400, "invalid_request", _("The request is malformed: %(where)s") % {"where": where}
    )


@api.exception_handler(HttpError)
def _http_error(request, exc):
    return _error(request, exc.status_code, "http_error", str(exc))


# ---------------------------------------------------------------- schemas and examples


class ErrorOut(Schema):
    code: str
    message: str


class ExpiryOut(Schema):
    expires_at: str
    amount: str


class LimitOut(Schema):
    scope: str = Field(..., description="account or key")
    api_key_prefix: str | None = None
    period: str = Field(..., description="day or month (Beijing time)")
    hard: bool
    limit: str
    spent: str
    reached: bool
    resets_at: str


class BalanceOut(Schema):
    is_available: bool = Field(..., description="What the gateway's authorize answers now.")
    code: str = Field(
        ...,
        description="ok, or why not: key_locked, account_suspended, account_locked, "
        "account_frozen, account_terminated, arrears, insufficient_balance, "
        "spend_limit_exceeded",
    )
    currency: str = CURRENCY
    available: str = Field(..., description="What may be spent now (the balance page's).")
    cash: str
    trial: str
    discount: str
    package: str | None = Field(None, description="Resource packages' unused value, if any.")
    refund_hold: str = Field(..., description="Cash held for refund requests in progress.")
    unsettled_usage: str = Field(..., description="Usage received, not settled yet.")
    arrears: str
    dispute_debt: str
    next_free_expiry: ExpiryOut | None = Field(
        None, description="The soonest expiry of trial or discount money, and how much."
    )
    spend_limits: list[LimitOut] = Field(
        default_factory=list,
        description="Your spend limits (R-USE-7) with this period's spend (settled + pending); "
        "a reached hard limit on the account or this key makes code spend_limit_exceeded.",
    )


class UsageRowOut(Schema):
    day: str | None = None
    model: str | None = None
    api_key_id: int | None = None
    api_key_prefix: str | None = None
    calls: int
    amount: str
    input_tokens: int
    output_tokens: int


class UsageOut(Schema):
    start: str
    end: str
    by: str
    currency: str = CURRENCY
    total_calls: int
    total_amount: str
    rows: list[UsageRowOut]


class KeyOut(Schema):
    id: int
    name: str
    prefix: str
    state: str = Field(..., description="active, locked (by the platform) or revoked")
    created_at: str
    last_used_at: str | None = None


EXAMPLE_BALANCE = {
    "is_available": True,
    "code": "ok",
    "currency": "CNY",
    "available": "118.250000",
    "cash": "100.000000",
    "trial": "20.000000",
    "discount": "0.000000",
    "package": None,
    "refund_hold": "0.000000",
    "unsettled_usage": "1.750000",
    "arrears": "0.000000",
    "dispute_debt": "0.000000",
    "next_free_expiry": {"expires_at": "2026-12-31T16:00:00+00:00", "amount": "20.000000"},
    "spend_limits": [
        {
            "scope": "account",
            "api_key_prefix": None,
            "period": "month",
            "hard": True,
            "limit": "500.000000",
            "spent": "81.750000",
            "reached": False,
            "resets_at": "2026-12-31T16:00:00+00:00",
        }
    ],
}
EXAMPLE_USAGE = {
    "start": "2026-11-01",
    "end": "2026-11-30",
    "by": "model",
    "currency": "CNY",
    "total_calls": 1532,
    "total_amount": "38.204000",
    "rows": [
        {
            "model": "deepseek-chat",
            "calls": 1500,
            "amount": "37.500000",
            "input_tokens": 1200000,
            "output_tokens": 300000,
        },
        {
            "model": "qwen-max",
            "calls": 32,
            "amount": "0.704000",
            "input_tokens": 25000,
            "output_tokens": 8000,
        },
    ],
}
EXAMPLE_EVENT = {
    "request_id": "req-20261201-0001",
    "state": "settled",
    "amount": "0.012000",
    "currency": "CNY",
    "model": "deepseek-chat",
    "received_at": "2026-12-01T08:00:00.120000+00:00",
    "occurred_at": None,
    "settled_at": "2026-12-01T08:00:01.300000+00:00",
    "transaction_id": 4711,
    "split": {
        "trial": "0.012000",
        "discount": "0.000000",
        "cash": "0.000000",
        "arrears": "0.000000",
    },
    "sources": [{"bucket": "trial", "grant": 12, "micro": 12000}],
}
EXAMPLE_KEY = {
    "id": 42,
    "name": "production",
    "prefix": "sk-AbCdEfGh",
    "state": "active",
    "created_at": "2026-10-01T02:00:00+00:00",
    "last_used_at": "2026-12-01T08:00:00+00:00",
}
AUTH_ERRORS_DOC = {
    401: {
        "description": "invalid_api_key (missing or unknown key) or key_revoked",
        "content": {
            "application/json": {
                "examples": {
                    "invalid_api_key": {
                        "value": {
                            "code": "invalid_api_key",
                            "message": "A valid API key is required.",
                        }
                    },
                    "key_revoked": {
                        "value": {"code": "key_revoked", "message": "This API key was revoked."}
                    },
                }
            }
        },
    },
    429: {
        "description": "rate_limited (this key's calls per minute) or too_many_auth_failures "
        "(this address sent invalid keys); both with Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        "content": {
            "application/json": {
                "examples": {
                    "rate_limited": {
                        "value": {
                            "code": "rate_limited",
                            "message": "Too many calls with this API key; wait.",
                        }
                    },
                    "too_many_auth_failures": {
                        "value": {
                            "code": "too_many_auth_failures",
                            "message": "Too many calls with an invalid API key; wait.",
                        }
                    },
                }
            }
        },
    },
}


def _doc(example, **errors):
    responses = {200: {"content": {"application/json": {"example": example}}}, **AUTH_ERRORS_DOC}
    for status, (code, message) in errors.items():
        responses[int(status.removeprefix("s"))] = {
            "description": code,
            "content": {"application/json": {"example": {"code": code, "message": message}}},
        }
    return {"responses": responses}


# ---------------------------------------------------------------- endpoints


def _money(micro: int) -> str:
    return micro_str(micro)


def _m(money) -> str:
    return micro_str(to_micro(money))


@api.get(
    "/balance",
    response={200: BalanceOut, 401: ErrorOut, 429: ErrorOut},
    openapi_extra=_doc(EXAMPLE_BALANCE),
)
def balance(request: HttpRequest):
    """Your balance now: `is_available` (what the gateway's authorize answers for this
    key, with its code), what may be spent, and every bucket; the balance page's
    figures. 当前余额：is_available（网关对此密钥的授权结论及原因代码）、可用金额和各项明细，
    与余额页面一致。"""
    key = request.auth
    now = timezone.now()
    account = BalanceAccount(pk=key.account_id)  # never saved: its id for the selectors
    read = balance_api_figures(key.account_id, now)  # one round trip
    figures, rows, expiry = read["figures"], read["buckets"], read["next_free_expiry"]
    summary = balance_summary(account, buckets=dict(enumerate(rows.items())), figures=figures)
    answer = verdict(key.state, key.standing, *figures)
    limits = []
    for item in spend_limits_of(account, now) if read["has_limits"] else ():  # R-USE-7
        lim = item["limit"]
        applies = lim.api_key_id in (None, key.pk)
        if answer.allowed and applies and lim.hard and item["reached"]:
            answer.allowed, answer.code = False, "spend_limit_exceeded"  # as authorize
        limits.append(
            {
                "scope": "key" if lim.api_key_id else "account",
                "api_key_prefix": lim.api_key.prefix if lim.api_key_id else None,
                "period": lim.period,
                "hard": lim.hard,
                "limit": _money(lim.limit_micro),
                "spent": _m(item["spent"]),
                "reached": item["reached"],
                "resets_at": item["resets_at"].isoformat(),
            }
        )
    out = {
        "is_available": answer.allowed,
        "code": answer.code,
        "currency": CURRENCY,
        "available": _m(summary["available"]),
        "cash": _m(summary["cash"]),
        "trial": _m(summary["trial"]),
        "discount": _m(summary["discount"]),
        "package": _money(rows["package"]) if "package" in rows else None,
        "refund_hold": _m(summary["hold"]),
        "unsettled_usage": _m(summary["pending"]),
        "arrears": _m(summary["arrears"]),
        "dispute_debt": _m(summary["dispute_debt"]),
        "next_free_expiry": (
            {"expires_at": expiry[0].isoformat(), "amount": _money(expiry[1])} if expiry else None
        ),
        "spend_limits": limits,
    }
    return JsonResponse(out)


class UsageQuery(Schema):
    start: date | None = Field(None, description="First Beijing day (default: 29 days before end)")
    end: date | None = Field(None, description="Last Beijing day, included (default: today)")
    by: str = Field("day", description="day, model or key", pattern="^(day|model|key)$")
    model: str | None = Field(None, max_length=100)
    api_key_id: int | None = Field(None, ge=1, le=2**63 - 1)


@api.get(
    "/usage",
    response={200: UsageOut, 400: ErrorOut, 401: ErrorOut, 429: ErrorOut},
    openapi_extra=_doc(
        EXAMPLE_USAGE,
        s400=("range_too_long", "A usage question covers at most 92 days."),
    ),
)
def usage(request: HttpRequest, query: Query[UsageQuery]):
    """Settled usage totals per Beijing day, model or key for a date range of at most 92
    days (the usage page's data, the daily rollup). Codes: invalid_request, invalid_range,
    range_too_long. 按北京时间的日、模型或密钥汇总的已结算用量，最长 92 天。"""
    key = request.auth
    end = query.end or timezone.localdate()
    try:
        start = query.start or end - timedelta(days=29)
    except OverflowError:  # an end in year 1: no day 29 days before it
        start = date.min
    if start > end:
        raise _Refused(400, "invalid_range", _("start must not be after end."))
    days = settings.ME_API_MAX_DAYS
    if (end - start).days + 1 > days:
        raise _Refused(
            400,
            "range_too_long",
            _("A usage question covers at most %(days)s days.") % {"days": days},
        )
    rows = usage_totals(
        key.account_id,
        start=start,
        end=end,
        by=query.by,
        model=query.model or None,
        api_key_id=query.api_key_id,
    )
    prefixes = key_prefixes([r.key for r in rows if r.key]) if query.by == "key" else {}
    out_rows = []
    for r in rows:
        item = {
            "calls": r.calls,
            "amount": _money(r.amount_micro),
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
        }
        if query.by == "day":
            item["day"] = r.key.isoformat()
        elif query.by == "model":
            item["model"] = r.key
        else:
            item["api_key_id"] = r.key
            item["api_key_prefix"] = prefixes.get(r.key)
        out_rows.append(item)
    return JsonResponse(
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "by": query.by,
            "currency": CURRENCY,
            "total_calls": sum(r.calls for r in rows),
            "total_amount": _money(sum(r.amount_micro for r in rows)),
            "rows": out_rows,
        }
    )


@api.get(
    "/usage/{path:request_id}",
    response={200: dict, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    openapi_extra=_doc(
        EXAMPLE_EVENT,
        s404=("unknown_request_id", "No usage event of this account has this request id."),
    ),
)
def usage_event(request: HttpRequest, request_id: str):
    """One usage event of this account by the gateway's request id: pending, or settled
    with what paid for it (as the gateway's `GET usage/{id}` answers). Another account's
    request id is 404, as an unknown one. 按请求 ID 查询本账户的一条用量。"""
    # no stored request id is longer or holds a control character (PostgreSQL refuses NUL)
    plausible = len(request_id) <= 200 and not _CONTROL.search(request_id)
    event = usage_event_for(request_id) if plausible else None
    if event is None or event.account_id != request.auth.account_id:
        raise _Refused(
            404,
            "unknown_request_id",
            _("No usage event of this account has this request id."),
        )
    return JsonResponse(_state_out(event))


@api.get(
    "/key",
    response={200: KeyOut, 401: ErrorOut, 429: ErrorOut},
    openapi_extra=_doc(EXAMPLE_KEY),
)
def key(request: HttpRequest):
    """The API key you called with: name, visible prefix, state, created and last used
    (by the gateway). 本次使用的密钥：名称、前缀、状态、创建和最近使用时间。"""
    card = api_key_card(request.auth.pk)
    if card is None:  # deleted between the lookup and now
        raise _Refused(401, "invalid_api_key", _("A valid API key is required."))
    return JsonResponse(
        {
            "id": card["id"],
            "name": card["name"],
            "prefix": card["prefix"],
            "state": card["state"],
            "created_at": card["created_at"].isoformat(),
            "last_used_at": card["last_used_at"].isoformat() if card["last_used_at"] else None,
        }
    )
