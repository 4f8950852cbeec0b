"""Where the two cores go: CPU seconds per process group, read from /proc (no psutil).

A background thread samples utime+stime of every process every `interval` seconds and
keeps, per pid, the first and last value seen inside the current phase; a phase's CPU
per group is the sum over its pids of (last − first), a pid born during the phase
counting from zero. A process that exits loses at most one interval of its CPU.

Groups are decided per pid by `classify(pid, comm, ppid)`: the benchmark registers
its clients and settlers by pid, the web server by its master's pid, and PostgreSQL
backends are told apart by the application_name their clients connect with
(pg_stat_activity), so a reader sees web workers and settlers with their backends.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def _stat(pid):
    """(comm, ppid, cpu seconds) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    end = raw.rfind(b")")
    comm = raw[raw.find(b"(") + 1 : end].decode(errors="replace")
    fields = raw[end + 2 :].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _machine():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])
    return total - idle, total


class CpuMeter:
    """Per-phase CPU seconds by group; `phase(name)` starts one, `stop()` ends it."""

    def __init__(self, interval=0.2, pg_apps=None):
        self.interval = interval
        self.clients: set[int] = set()
        self.settlers: set[int] = set()
        self.web_master: int | None = None
        self.pg_apps = pg_apps  # callable: {backend pid: application_name}
        self._pg_names: dict[int, str] = {}
        self._pg_next = 0.0
        self._lock = threading.Lock()
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._name = None
        self._machine0 = None
        self._t0 = 0.0
        self.results: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _group(self, pid, comm, ppid):
        if pid in self.clients:
            return "client"
        if pid in self.settlers:
            return "settler"
        if self.web_master and (pid == self.web_master or ppid == self.web_master):
            return "web"
        if comm == "postgres":
            app = self._pg_names.get(pid)
            if not app and self.pg_apps is not None and time.monotonic() > self._pg_next:
                # a backend shows its application_name only once its client has logged
                # in: ask again (at most every 0.2 s) until it has one
                self._pg_next = time.monotonic() + 0.2
                with contextlib.suppress(Exception):  # classification is best effort
                    self._pg_names.update(self.pg_apps())
                app = self._pg_names.get(pid)
            app = app or ""
            if app.startswith("bench-web"):
                return "pg:web"
            if app.startswith("bench-settler"):
                return "pg:settler"
            return "pg:other"
        if pid == os.getpid():
            return "bench"
        if comm.startswith("redis"):
            return "redis"
        return "other"

    def _sample(self):
        seen = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            st = _stat(pid)
            if st is None:
                continue
            comm, ppid, cpu = st
            seen[pid] = (self._group(pid, comm, ppid), cpu)
        return seen

    def _loop(self):
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._name is None:
                    continue
                self._absorb(self._sample())

    def _absorb(self, seen):
        for pid, (group, cpu) in seen.items():
            if pid not in self._first:
                self._first[pid] = 0.0 if self._name_started_after(pid) else cpu
            prev = self._last.get(pid)
            # a group can only become more precise (a pid registered after its first sample)
            self._last[pid] = (group if prev is None or group != "other" else prev[0], cpu)

    def _name_started_after(self, pid):
        return pid not in self._baseline

    def phase(self, name):
        with self._lock:
            if self._name is not None:
                self._close()
            seen = self._sample()
            self._baseline = set(seen)
            self._first = {pid: cpu for pid, (_, cpu) in seen.items()}
            self._last = dict(seen)
            self._name = name
            self._machine0 = _machine()
            self._t0 = time.monotonic()

    def stop(self):
        with self._lock:
            if self._name is not None:
                self._close()
            self._name = None

    def _close(self):
        self._absorb(self._sample())
        groups: dict[str, float] = {}
        for pid, (group, cpu) in self._last.items():
            used = cpu - self._first.get(pid, 0.0)
            if used > 0:
                groups[group] = groups.get(group, 0.0) + used
        busy1, total1 = _machine()
        busy0, total0 = self._machine0
        wall = time.monotonic() - self._t0
        self.results[self._name] = {
            "wall": wall,
            "groups": groups,
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
        }

    def close(self):
        self.stop()
        self._stop.set()

    def share(self, name) -> dict[str, float]:
        """Group → share of the machine's CPU capacity (2 cores × wall time) in the phase;
        `idle` is what no process used."""
        res = self.results[name]
        capacity = res["wall"] * CORES
        out = {g: s / capacity for g, s in sorted(res["groups"].items())}
        out["idle"] = max(0.0, 1.0 - res["machine_busy"])
        return out


ORDER = ["client", "web", "pg:web", "settler", "pg:settler", "pg:other", "redis", "bench", "other"]
SHORT = {
    "client": "cli",
    "web": "web",
    "pg:web": "pgW",
    "settler": "set",
    "pg:settler": "pgS",
    "pg:other": "pgO",
    "redis": "rds",
    "bench": "bch",
    "other": "oth",
    "idle": "idle",
}


def share_text(shares: dict[str, float]) -> str:
    """'cli 12 web 40 pgW 30 …' in percent of 2 cores, groups under 0.5 % left out."""
    parts = []
    for g in [*ORDER, "idle"]:
        v = shares.get(g, 0.0)
        if v >= 0.005:
            parts.append(f"{SHORT[g]} {v * 100:.0f}")
    return " ".join(parts)
