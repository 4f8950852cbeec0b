"""Production defaults (issue 25): persistent, health-checked connections; one Redis
client per connection pool; the usage events' own autovacuum settings; the API key page
links to the user API's docs (issue 27)."""

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db


def test_connections_persist_and_are_health_checked():
    """Issue 25: DB_CONN_MAX_AGE defaults above 0, with CONN_HEALTH_CHECKS."""
    import os

    if "DB_CONN_MAX_AGE" not in os.environ:
        assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 60
    if "DB_CONN_HEALTH_CHECKS" not in os.environ:
        assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def test_one_redis_client_per_pool():
    """Issue 25: the cache hands out one shared redis.Redis, not a new one per call."""
    from core.cache import SharedRedisCacheClient

    client = SharedRedisCacheClient(["redis://127.0.0.1:6379/0"])
    assert client.get_client("a") is client.get_client("b", write=True)


def test_usage_events_have_their_own_autovacuum_settings():
    """Issue 25: billing_usageevent vacuums after ~1 % dead rows, not the default 20 %."""
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE relname = 'billing_usageevent'")
        (options,) = cur.fetchone()
    assert "autovacuum_vacuum_scale_factor=0.01" in options


def test_api_key_page_links_to_the_user_api_docs(client, user):
    """Issue 27: the API key page links to the user API's documentation."""
    client.force_login(user)
    page = client.get("/api-keys/").content.decode()
    assert 'href="/api/v1/me/docs"' in page
