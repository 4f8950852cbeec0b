"""An experiment, not a deployment: the project's settings with only the middleware the
gateway API needs (request id and metrics, security headers), to measure what Django's
page middleware (sessions, locale, CSRF, auth, OTP, messages, axes) costs each gateway
call. Served by `BENCH_SETTINGS=lean`; the gateway endpoints authenticate by service
token and use none of what the left-out middleware provides."""

from config.settings import *  # noqa: F403

MIDDLEWARE = [
    "ops.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
