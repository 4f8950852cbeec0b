"""A real `celery -A config worker` subprocess against the test database and Redis, for
the end-to-end job tests (tests/ops/test_celery_worker.py, the usage settler's
tests/ledger/test_settlement_worker.py)."""

import os
import subprocess
import sys
from contextlib import contextmanager
from urllib.parse import quote

from django.conf import settings
from django.db import connection


def database_url(user=None, password=None):
    """The test database's URL, for a subprocess to connect to the same database (as the
    test's role, or as `user`). A Unix socket directory (the embedded server's) is the
    host percent-encoded, which libpq and dj-database-url both read."""
    db = connection.settings_dict
    if user is None:
        user, password = db["USER"], db.get("PASSWORD")
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = connect_kwargs()["host"]
    host = quote(host, safe="") if host.startswith("/") else host
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def connect_kwargs():
    """Where the test database's server is, as psycopg.connect keywords."""
    db = connection.settings_dict
    host = db["HOST"] or db.get("OPTIONS", {}).get("host") or "127.0.0.1"
    return {"host": host, "port": db["PORT"] or 5432, "dbname": db["NAME"]}


@contextmanager
def celery_worker(tmp, queues, *, env=None, stop_timeout=20):
    """Run a solo-pool worker consuming `queues` (the first is its own, `.queue`) with its
    log in `tmp` (`.tmp`), until the block ends; then terminate it (kill after
    `stop_timeout` seconds)."""
    environment = dict(
        os.environ,
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=os.environ["REDIS_URL"],
        PORTAL_VAR_DIR=str(tmp),
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        CELERY_TASK_ALWAYS_EAGER="0",
        **(env or {}),
    )
    log = open(tmp / "worker.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"]
        + ["-Q", ",".join(queues)]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.queue, process.tmp = queues[0], tmp
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
