"""A Redis cache that an unreachable Redis cannot break (R-USE-6).

Redis is a cache here; PostgreSQL is the truth. The gateway API counts wrong service
tokens in the cache (billing.api), and the portal must still authorize keys and meter
usage while Redis is down, restarting or unreachable: reads answer their default, writes
are dropped, `incr` behaves as for a missing key (ValueError), and each failure is logged.
After a failure Redis is left alone for `RETRY_AFTER` seconds, so a dead server costs one
refused connection per few seconds, not one per call. Socket timeouts are short for the
same reason (a server that does not answer must not hold a request for long).

Trade-off: while Redis is down, what is kept only in the cache (the throttle of wrong
service tokens, the payment sandbox's scripted answers) is forgotten; the health check
still reports the cache as failing (its probe value does not come back).
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

log = logging.getLogger("core.cache")

SHORT_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
RETRY_AFTER = 5.0


def _redis_errors():
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)


class SharedRedisCacheClient(RedisCacheClient):
    """Django's client builds a new redis.Redis (a 170-entry callback table) for every
    cache call; one per connection pool is enough (redis.Redis is thread-safe and its
    pool reconnects after a fork). Measured: about a quarter of the gateway's per-call
    cache CPU (issue 25)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ForgivingRedisCache(RedisCache):
    """Django's RedisCache; on a connection error or timeout it logs a warning and
    answers like an empty cache instead of raising."""

    def __init__(self, server, params):
        params = dict(params)
        params["OPTIONS"] = {**SHORT_TIMEOUTS, **params.get("OPTIONS", {})}
        super().__init__(server, params)
        self._class = SharedRedisCacheClient  # one redis.Redis per pool, not per call
        self._down_until = 0.0
        self._errors = _redis_errors()

    def _call(self, name, fallback, *args, **kwargs):
        if time.monotonic() < self._down_until:
            return fallback()
        try:
            return getattr(super(), name)(*args, **kwargs)
        except self._errors as exc:
            self._down_until = time.monotonic() + RETRY_AFTER
            log.warning(
                "cache unreachable (%s: %s); answering without it for %ss",
                type(exc).__name__,
                exc,
                RETRY_AFTER,
            )
            return fallback()

    def add(self, key, *args, **kwargs):
        return self._call("add", lambda: False, key, *args, **kwargs)

    def get(self, key, default=None, version=None):
        return self._call("get", lambda: default, key, default, version)

    def set(self, key, *args, **kwargs):
        return self._call("set", lambda: None, key, *args, **kwargs)

    def touch(self, key, *args, **kwargs):
        return self._call("touch", lambda: False, key, *args, **kwargs)

    def delete(self, key, *args, **kwargs):
        return self._call("delete", lambda: False, key, *args, **kwargs)

    def get_many(self, keys, *args, **kwargs):
        return self._call("get_many", dict, keys, *args, **kwargs)

    def has_key(self, key, *args, **kwargs):
        return self._call("has_key", lambda: False, key, *args, **kwargs)

    def incr(self, key, *args, **kwargs):
        def missing():
            raise ValueError(f"Key {key!r} not found (cache unreachable).")

        return self._call("incr", missing, key, *args, **kwargs)

    def set_many(self, data, *args, **kwargs):
        return self._call("set_many", lambda: list(data), data, *args, **kwargs)

    def delete_many(self, keys, *args, **kwargs):
        return self._call("delete_many", lambda: None, keys, *args, **kwargs)

    def clear(self):
        return self._call("clear", lambda: False)
