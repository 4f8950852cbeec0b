"""Shared benchmark plumbing: pgbench baseline, a web server, timing helpers."""

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
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
HOST, PORT = "127.0.0.1", int(os.environ.get("BENCH_PORT", "8101"))  # one server per bench run


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
    # The embedded server's URL names its socket directory, percent-encoded, as the host.
    host = unquote(u.netloc.rpartition("@")[2].rsplit(":", 1)[0]) if "%2F" in u.netloc else None
    env.update(
        PGHOST=host or u.hostname or "127.0.0.1",
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


SERVER_KINDS = ("sync", "gthread", "granian")


class WebServer:
    """The project served on 127.0.0.1:8101 for the duration of a `with`.

    kind: `sync` (gunicorn sync workers: one request at a time, the connection closed
    after each), `gthread` (gunicorn threads with keep-alive) or `granian` (Rust HTTP
    server, WSGI interface, keep-alive; only if the package is installed)."""

    def __init__(self, kind="sync", workers=6, threads=1, extra_env=None):
        if kind not in SERVER_KINDS:
            raise ValueError(f"server kind {kind!r}: one of {SERVER_KINDS}")
        self.kind, self.workers, self.threads = kind, workers, threads
        self.extra_env = extra_env or {}
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def label(self):
        if self.kind == "sync":
            return f"gunicorn sync x{self.workers}"
        name = "gunicorn gthread" if self.kind == "gthread" else self.kind
        return f"{name} x{self.workers}t{self.threads}"

    def _argv(self):
        bindir = Path(sys.executable).parent
        if self.kind == "granian":
            return [
                str(bindir / "granian"),
                "--interface",
                "wsgi",
                "config.wsgi:application",
                "--host",
                HOST,
                "--port",
                str(PORT),
                "--workers",
                str(self.workers),
                "--blocking-threads",
                str(self.threads),
                "--backlog",
                "256",
                "--no-ws",
                "--log-level",
                "warning",
            ]
        argv = [
            str(bindir / "gunicorn"),
            "config.wsgi",
            "-b",
            f"{HOST}:{PORT}",
            "-w",
            str(self.workers),
            "--preload",  # import Django once, before forking the workers
            "--backlog",
            "256",
            "--log-level",
            "warning",
        ]
        if self.kind == "gthread":
            argv += ["-k", "gthread", "--threads", str(self.threads), "--keep-alive", "30"]
        return argv

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
        self.proc = subprocess.Popen(self._argv(), cwd=ROOT, env=env, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection((HOST, PORT), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} server exited during start-up")
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.kind} server did not start")

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
