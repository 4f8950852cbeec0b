"""Shared benchmark plumbing: pgbench baseline, a gunicorn server, timing helpers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
HOST, PORT = "127.0.0.1", 8101


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench: set DATABASE_URL to a PostgreSQL database (postgres://…)")
    return url


def ensure_pgbench() -> str:
    found = shutil.which("pgbench") or next(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin/pgbench")), None
    )
    if found:
        return found
    print("bench: pgbench missing, installing postgresql-contrib …", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "postgresql-contrib"], check=True)
    found = shutil.which("pgbench")
    if not found:
        sys.exit("bench: pgbench still not found after installing postgresql-contrib")
    return found


def _pg_env():
    u = urlparse(database_url())
    env = dict(os.environ)
    env.update(
        PGHOST=u.hostname or "127.0.0.1",
        PGPORT=str(u.port or 5432),
        PGUSER=u.username or "postgres",
        PGDATABASE=u.path.lstrip("/"),
    )
    if u.password:
        env["PGPASSWORD"] = u.password
    return env


_pgbench_cache: dict = {}


def pgbench_tps(seconds=12, clients=8) -> float:
    """`pgbench -N -c 8` on the same database; measured once per run and shared."""
    if "tps" in _pgbench_cache:
        return _pgbench_cache["tps"]
    exe = ensure_pgbench()
    env = _pg_env()
    subprocess.run([exe, "-i", "-s", "10", "-q"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [exe, "-N", "-c", str(clients), "-j", "2", "-T", str(seconds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    _pgbench_cache["tps"] = float(match.group(1))
    return _pgbench_cache["tps"]


class Gunicorn:
    """gunicorn serving the project on 127.0.0.1:8101 for the duration of a `with`."""

    def __init__(self, workers=6, extra_env=None, threads=1):
        self.workers = workers
        self.threads = threads
        self.extra_env = extra_env or {}
        self.proc = None

    def __enter__(self):
        try:
            socket.create_connection((HOST, PORT), timeout=0.5).close()
        except OSError:
            pass
        else:
            raise RuntimeError(f"{HOST}:{PORT} is already in use; stop that server first")
        env = dict(os.environ)
        env.update(
            DJANGO_DEBUG="0",
            DB_CONN_MAX_AGE="600",
            LOG_LEVEL="WARNING",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            **self.extra_env,
        )
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.proc = subprocess.Popen(
            [
                gunicorn,
                "config.wsgi",
                "-b",
                f"{HOST}:{PORT}",
                "-w",
                str(self.workers),
                "--preload",  # import Django once, before forking the workers
                "--backlog",
                "256",
                *(
                    ["-k", "gthread", "--threads", str(self.threads), "--keep-alive", "30"]
                    if self.threads > 1
                    else []
                ),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection((HOST, PORT), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("gunicorn exited during start-up")
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]
