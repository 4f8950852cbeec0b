"""Request ids, structured logs without personal data, and Prometheus metrics wiring.

- RequestIdMiddleware gives every request an id (the caller's `X-Request-ID` when it is a
  short token, else a new one), returns it in the response header, and puts it on every
  log record made while the request runs.
- JsonFormatter writes one JSON object per line: time, level, logger, message, request id.
- RedactFilter masks what looks like personal data (emails, mainland phone numbers,
  resident ID numbers, API key secrets) in every message, whoever logged it.
- The gateway's answers are counted by endpoint and status (ops.metrics).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from django.conf import settings
from django.http import HttpResponse, JsonResponse

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PERSONAL = [
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"sk-[A-Za-z0-9_-]{8,}"), "<api-key>"),
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "<id-number>"),
    (re.compile(r"(?<!\d)(\+?86)?1[3-9]\d{9}(?!\d)"), "<phone>"),
]


def redact(text: str) -> str:
    for pattern, mask in _PERSONAL:
        text = pattern.sub(mask, text)
    return text


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = request_id_var.get()
        return True


class RedactFilter(logging.Filter):
    """Masks personal data in the formatted message (the args are merged first)."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logged as is
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.gateway_prefix = settings.GATEWAY_PATH_PREFIX

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        request.request_id = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        if request.path.startswith(self.gateway_prefix):
            _count_gateway(request.path[len(self.gateway_prefix) :], response, started)
        return response


def _count_gateway(endpoint, response, started):
    from .metrics import GATEWAY_LATENCY, GATEWAY_REQUESTS

    endpoint = endpoint.strip("/") or "-"
    if endpoint not in {"authorize", "usage", "usage/batch", "docs", "openapi.json"}:
        endpoint = "other"  # never a caller-chosen label value
    GATEWAY_REQUESTS.labels(endpoint, str(response.status_code)).inc()
    GATEWAY_LATENCY.labels(endpoint).observe(time.perf_counter() - started)


def may_read_internals(request) -> bool:
    """Metrics and the health checks' details: open in development; in production a
    bearer token (METRICS_TOKEN) or a staff login."""
    import hmac

    if settings.METRICS_PUBLIC:
        return True
    expected = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    if expected and given and hmac.compare_digest(given.encode(), expected.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_view(request):
    """Prometheus text format, for those who may read the internals."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from .metrics import registry

    if not may_read_internals(request):
        return JsonResponse({"code": "unauthorized", "message": "Token required."}, status=401)
    # every process's counters when PROMETHEUS_MULTIPROC_DIR is set, plus the database's figures
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
