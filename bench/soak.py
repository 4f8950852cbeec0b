"""Soak test with faults (issue 26 part 4): bench/soak.sh runs this.

Owns everything it runs, in a temporary directory: an embedded PostgreSQL
(scripts/embedded_pg.py), a Redis on a spare port (cache and Celery broker), the web
server (gunicorn, 2 workers), two usage settlers (manage.py settle_usage) and a Celery
worker with beat. A supervisor restarts any of them that dies (as systemd's
Restart=always would, after 1 s). Meanwhile mixed traffic:

- the model gateway: usage batches and authorize calls over HTTP, each batch retried with
  the same request ids until it is answered (as the gateway must), so every event is
  accounted for;
- users paying through the Alipay sandbox: a top-up order started, then Alipay's signed
  notification POSTed to the web server (some paid by a third party);
- refunds: filed, reviewed, approved (four eyes), paid out through the sandbox's Alipay
  refund API by the Celery worker;
- disputes: opened on third-party top-ups, then withdrawn;
- the jobs, on beat's schedule.

Faults, spread over the run: SIGKILL a settler, the Celery worker, the web server; restart
Redis; restart PostgreSQL. Each fault's heal time is measured from the fault to the
moment its probe passes again. At the end: the settlers drain, the ledger is reconciled,
and one table is printed (and written as JSON to $SOAK_DIR/result.json).

    SOAK_MINUTES=3 bash bench/soak.sh        (default 30)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable


def free_port(start):
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("soak: no free port")


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Soak:
    def __init__(self, minutes: float, workdir: Path):
        self.seconds = minutes * 60
        self.dir = workdir
        self.web_port = free_port(8300)
        self.redis_port = free_port(6391)
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, list[str]] = {}
        self.supervise = True
        self.paused: set[str] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.codes: Counter = Counter()
        self.server_errors: list[float] = []  # times of 5xx answers
        self.errors: Counter = Counter()  # client-side failures by kind (refused, reset)
        self.counts: Counter = Counter()
        self.request_ids: set[str] = set()  # usage events answered accepted or replayed
        self.faults: list[dict] = []
        self.pg_windows: list[tuple[float, float]] = []

    # ------------------------------------------------------------------ services

    def env(self):
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/1",
            PORTAL_VAR_DIR=str(self.dir / "var"),
            PROMETHEUS_MULTIPROC_DIR=str(self.dir / "prometheus"),
            PORTAL_BASE_URL=self.base,
            LOG_LEVEL="WARNING",
            USAGE_SETTLER_SECONDS="0",
            DJANGO_SETTINGS_MODULE="config.settings",
        )
        return env

    def start_redis(self):
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port",
             str(self.redis_port), "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--logfile", str(self.dir / "redis.log"), "--pidfile", str(self.dir / "redis.pid")],
            check=True,
        )  # fmt: skip
        self._wait(lambda: self._redis_ping(), 30, "redis")

    def stop_redis(self):
        subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "shutdown", "nosave"], capture_output=True
        )

    def _redis_ping(self):
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True, text=True
        )
        return out.stdout.strip() == "PONG"

    def start_pg(self):
        out = subprocess.run(
            [PY, "scripts/embedded_pg.py", "start", str(self.dir / "pg"), "--database", "portal",
             "--owner-pid", str(os.getpid())],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.db_url = out.stdout.strip().splitlines()[-1]

    def stop_pg(self):
        subprocess.run(
            [PY, "scripts/embedded_pg.py", "stop", str(self.dir / "pg"), "--owner-pid",
             str(os.getpid())],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip

    def spawn(self, name):
        logf = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            self.specs[name], cwd=ROOT, env=self.env(), stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self, name):
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def supervisor(self):
        while self.supervise:
            for name, proc in list(self.procs.items()):
                if name not in self.paused and proc.poll() is not None:
                    time.sleep(1.0)  # Restart=always, RestartSec=1
                    if self.supervise and name not in self.paused:
                        self.counts[f"restarted {name}"] += 1
                        self.spawn(name)
            time.sleep(0.2)

    def _wait(self, probe, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if probe():
                    return True
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.25)
        raise SystemExit(f"soak: {what} did not come up in {timeout}s")

    # --------------------------------------------------------------------- HTTP

    def http(self, path, body=None, *, form=False, headers=None, timeout=15):
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                hdrs["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            with self.lock:
                self.errors[f"no answer ({type(reason).__name__})"] += 1
            return None, b""
        with self.lock:
            self.codes[status] += 1
            if status >= 500:
                self.server_errors.append(time.time())
        return status, payload

    def gw(self, path, body):
        from django.conf import settings

        token = settings.GATEWAY_SERVICE_TOKEN
        return self.http(
            "/api/v1/gateway/" + path, body, headers={"Authorization": f"Bearer {token}"}
        )

    # ------------------------------------------------------------------ traffic

    def guarded(self, name, fn, pause):
        from django.db import close_old_connections, connection

        while not self.stop.is_set():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - counted; the loop goes on
                with self.lock:
                    self.errors[f"{name}: {type(exc).__name__}"] += 1
                connection.close()
            finally:
                close_old_connections()
            self.stop.wait(pause)

    def gateway_loop(self, idx):
        n = [0]

        def once():
            tag = f"soak-{idx}-{n[0]}"
            n[0] += 1
            keys = self.keys
            events = [
                {"request_id": f"{tag}.{j}", "api_key": keys[(idx * 7 + n[0] + j) % len(keys)],
                 "model": "soak-model", "amount": "0.000123"}
                for j in range(20)
            ]  # fmt: skip
            give_up = time.monotonic() + 180
            while time.monotonic() < give_up:
                status, payload = self.gw("usage/batch", {"events": events})
                if status == 200:
                    results = json.loads(payload)["results"]
                    with self.lock:
                        for r in results:
                            self.counts[f"usage {r['status']}"] += 1
                            if r["status"] in ("accepted", "replayed"):
                                self.request_ids.add(r["request_id"])
                    break
                self.counts["usage batch retried"] += 1
                time.sleep(0.5)
            else:
                self.counts["usage batch given up"] += 1
            self.gw("authorize", {"api_key": events[0]["api_key"]})
            self.counts["authorize calls"] += 1

        self.guarded(f"gateway{idx}", once, 0.05)

    def payment_loop(self):
        from django.conf import settings

        from accounts.models import User
        from topups import sandbox
        from topups.models import Channel
        from topups.services.orders import start_topup

        i = [0]

        def once():
            i[0] += 1
            user = User.objects.get(email=self.payers[i[0] % len(self.payers)])
            third = i[0] % 4 == 0
            topup = start_topup(user, "20.00", channel=Channel.ALIPAY)
            biz = {"out_trade_no": topup.out_trade_no, "total_amount": "20.00", "subject": "x"}
            params = sandbox.notification_for(
                {"app_id": settings.ALIPAY_APP_ID, "biz_content": json.dumps(biz)},
                payer_name="第三方 付款人" if third else "",
            )
            for _attempt in range(120):  # Alipay retries until it hears success
                status, payload = self.http("/topups/alipay/notify/", params, form=True)
                if status == 200 and payload.strip() == b"success":
                    self.counts["alipay payments credited"] += 1
                    return
                time.sleep(1)
            self.counts["alipay payments not credited"] += 1

        self.guarded("payments", once, 1.0)

    def refund_loop(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from accounts.models import User
        from refunds.services.decisions import approve_refund, take_for_review
        from refunds.services.filing import submit_refund
        from refunds.services.payouts import start_payout

        i = [0]
        pdf = b"%PDF-1.4\n% soak refund proof\n%%EOF\n"

        def once():
            i[0] += 1
            user = User.objects.get(email=self.payers[i[0] % len(self.payers)])
            try:
                refund = submit_refund(
                    user,
                    amount="1.00",
                    reason="soak",
                    proofs=[SimpleUploadedFile("p.pdf", pdf, content_type="application/pdf")],
                )
            except Exception as exc:  # noqa: BLE001 - e.g. nothing refundable yet
                self.counts[f"refund refused ({type(exc).__name__})"] += 1
                return
            take_for_review(refund, actor=self.cs, reason="soak")
            approve_refund(refund, actor=self.finance, reason="soak")
            start_payout(refund, actor=self.finance, reason="soak")
            self.counts["refunds approved and sent"] += 1

        self.guarded("refunds", once, 4.0)

    def dispute_loop(self):
        from disputes.models import Dispute, DisputedTopUp
        from disputes.services.decisions import withdraw
        from disputes.services.opening import open_dispute
        from topups.models import TopUp

        def once():
            topup = (
                TopUp.objects.filter(third_party=True, state="paid")
                .exclude(pk__in=DisputedTopUp.objects.values("topup_id"))
                .order_by("-id")
                .first()
            )
            if topup is None:
                return
            dispute = open_dispute(
                [topup], actor=self.cs, amount="5.00", reported_by="soak bank",
                reported_via="phone", rights_holder_name="权利人",
            )  # fmt: skip
            self.counts["disputes opened"] += 1
            time.sleep(2)
            withdraw(Dispute.objects.get(pk=dispute.pk), actor=self.cs, reason="soak: withdrawn")
            self.counts["disputes withdrawn"] += 1

        self.guarded("disputes", once, 8.0)

    # ------------------------------------------------------------------- faults

    def pending_oldest(self):
        from django.db import connection

        from billing.services.settlement import pending_summary

        try:
            return pending_summary()["oldest_age"]
        finally:
            connection.close()

    def _log_has(self, name, text, offset):
        data = (self.dir / f"{name}.log").read_bytes()[offset:]
        return text.encode() in data

    def fault(self, what, inject, probe, timeout=180):
        log(f"fault: {what}")
        t0 = time.time()
        inject()
        healed = None
        while time.time() - t0 < timeout:
            try:
                if probe():
                    healed = time.time() - t0
                    break
            except Exception:  # noqa: BLE001 - not healed yet
                pass
            time.sleep(0.25)
        self.faults.append({"fault": what, "healed_s": healed, "at": t0})
        log(f"  healed in {healed if healed is None else round(healed, 1)} s")
        return t0, time.time()

    def live(self):
        status, _ = self.http("/ops/health/live/")
        return status == 200

    def authorize_ok(self):
        status, _ = self.gw("authorize", {"api_key": self.keys[0]})
        return status == 200

    def run_faults(self):
        def kill_settler():
            self.settler_pid = self.procs["settler1"].pid
            self.kill("settler1")

        def settler_back():
            proc = self.procs["settler1"]
            restarted = proc.pid != self.settler_pid and proc.poll() is None
            return restarted and self.pending_oldest() < 5

        def kill_worker():
            self.worker_offset = (self.dir / "worker.log").stat().st_size
            self.kill("worker")

        def kill_web():
            self.kill("web")

        def restart_redis():
            self.stop_redis()
            time.sleep(1)
            self.start_redis()

        def restart_pg():
            self.paused.update({"settler1", "settler2", "worker", "web"})
            self.stop_pg()
            time.sleep(1)
            self.start_pg()
            self.paused.clear()

        plan = [
            ("SIGKILL a usage settler", kill_settler, settler_back),
            (
                "SIGKILL the Celery worker",
                kill_worker,
                lambda: self._log_has("worker", "ready.", self.worker_offset),
            ),
            ("SIGKILL the web server", kill_web, lambda: self.live() and self.authorize_ok()),
            (
                "restart Redis",
                restart_redis,
                lambda: self._redis_ping() and self.authorize_ok(),
            ),
            (
                "restart PostgreSQL",
                restart_pg,
                lambda: self.authorize_ok() and self.pending_oldest() < 5,
            ),
        ]
        start = time.time()
        for k, (what, inject, probe) in enumerate(plan):
            due = start + self.seconds * (k + 1) / (len(plan) + 1)
            if self.stop.wait(max(0.0, due - time.time())):
                return
            t0, t1 = self.fault(what, inject, probe)
            if what == "restart PostgreSQL":
                self.pg_windows.append((t0, t1))

    # --------------------------------------------------------------------- setup

    def seed(self):
        from datetime import date

        from django.utils import timezone

        from accounts import selectors as acc_selectors
        from accounts import services as acc_services
        from accounts.identity import make_resident_id
        from accounts.models import User, VerificationKind
        from bench.seed import create_accounts
        from topups.services.trials import approve_verification

        specs = [(f"soak-{i}@soak.local", f"sk-soak-{i:05d}-key-material", f"sk-sk{i:05d}")
                 for i in range(200)]  # fmt: skip
        create_accounts(specs, "1000.00")
        self.keys = [raw for _, raw, _ in specs]
        self.cs = User.objects.create_superuser("soak-cs@soak.local", "soak-password-1")
        self.finance = User.objects.create_superuser("soak-fin@soak.local", "soak-password-2")
        version = acc_selectors.agreement_in_force()
        self.payers = []
        for i in range(6):
            user = User.objects.create_user(f"payer-{i}@soak.local", "soak-password-3")
            User.objects.filter(pk=user.pk).update(email_verified_at=timezone.now())
            user.refresh_from_db()
            acc_services.accept_agreement(user, version, ip="127.0.0.1")
            v = acc_services.submit_verification(
                user, kind=VerificationKind.INDIVIDUAL, legal_name=f"付款人{i}",
                id_number=make_resident_id(date(1990, 1, 1 + i), sequence=300 + i),
                phone=f"1380013{i:04d}",
            )  # fmt: skip
            approve_verification(v, actor=self.cs, reason="soak")
            self.payers.append(user.email)

    def run(self):
        (self.dir / "var").mkdir(parents=True, exist_ok=True)
        (self.dir / "prometheus").mkdir(exist_ok=True)
        log(f"working in {self.dir}; web on {self.base}, redis on {self.redis_port}")
        self.start_redis()
        self.start_pg()
        env = self.env()
        for cmd in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
            subprocess.run([PY, "manage.py", *cmd], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        os.environ.update(env)
        import django

        django.setup()
        self.seed()
        from django.db import connection

        connection.close()
        self.specs = {
            "web": [PY, "-m", "gunicorn", "config.wsgi", "-w", "2", "--threads", "4", "-b",
                    f"127.0.0.1:{self.web_port}", "--graceful-timeout", "5"],
            "settler1": [PY, "manage.py", "settle_usage", "--seconds", "31536000"],
            "settler2": [PY, "manage.py", "settle_usage", "--seconds", "31536000"],
            "worker": [PY, "-m", "celery", "-A", "config", "worker", "--beat", "--pool=solo",
                       "-Q", "money,notices,celery",  # both queues (config/celery.py)
                       "--loglevel=INFO", f"--schedule={self.dir / 'beat-schedule'}"],
        }  # fmt: skip
        for name in self.specs:
            self.spawn(name)
        self._wait(self.live, 60, "web")
        log(f"traffic for {self.seconds / 60:.0f} min")
        threads = [threading.Thread(target=self.supervisor, daemon=True)]
        threads += [threading.Thread(target=self.gateway_loop, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=fn) for fn in
                    (self.payment_loop, self.refund_loop, self.dispute_loop)]  # fmt: skip
        faults = threading.Thread(target=self.run_faults)
        started = time.time()
        for t in [*threads, faults]:
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads[1:] + [faults]:
            t.join(300)
        self.elapsed = time.time() - started
        log("traffic stopped; settlers draining")
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if self.pending_count() == 0:
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(1)
        try:
            self._wait(self.payouts_done, 120, "refund payouts")  # the worker's, in flight
        except SystemExit:
            self.counts["refund payouts unfinished at the end"] += 1
        return self.report()

    def payouts_done(self):
        from django.db import connection

        from refunds.models import RefundLine

        try:
            return not RefundLine.objects.filter(payout_state__in=["sending", "unknown"]).exists()
        finally:
            connection.close()

    def pending_count(self):
        from django.db import connection

        from billing.services.settlement import pending_summary

        try:
            return pending_summary()["events"]
        finally:
            connection.close()

    def report(self):
        from django.db import connection
        from django.db.models import Count, Q, Sum

        from billing.models import UsageEvent
        from billing.services.reconcile import reconcile_all
        from refunds.models import RefundLine
        from topups.models import TopUp

        ids = sorted(self.request_ids)
        stored = settled = 0
        for k in range(0, len(ids), 5000):
            row = UsageEvent.objects.filter(request_id__in=ids[k : k + 5000]).aggregate(
                n=Count("id"), s=Count("id", filter=Q(transaction__isnull=False))
            )
            stored += row["n"]
            settled += row["s"]
        report = reconcile_all()
        paid = TopUp.objects.filter(channel="alipay", state__in=["paid", "refunded"]).aggregate(
            n=Count("id"), s=Sum("amount")
        )
        refunded = RefundLine.objects.filter(payout_state="paid").aggregate(
            n=Count("id"), s=Sum("refunded_micro")
        )
        usage = UsageEvent.objects.filter(transaction__isnull=False).aggregate(
            s=Sum("amount_micro")
        )
        connection.close()
        in_pg = sum(
            1 for t in self.server_errors if any(a - 1 <= t <= b + 1 for a, b in self.pg_windows)
        )
        heals = [f["healed_s"] for f in self.faults]
        result = {
            "minutes": round(self.elapsed / 60, 1),
            "http_answers_by_code": dict(sorted(self.codes.items())),
            "no_answer": dict(self.errors),
            "5xx_total": len(self.server_errors),
            "5xx_during_pg_restart": in_pg,
            "5xx_other": len(self.server_errors) - in_pg,
            "traffic": dict(sorted(self.counts.items())),
            "events_accepted": len(ids),
            "events_stored": stored,
            "events_settled": settled,
            "events_lost": len(ids) - stored,
            "alipay_paid": [paid["n"], str(paid["s"] or 0)],
            "refunds_paid_out": [refunded["n"], (refunded["s"] or 0) / 1_000_000],
            "usage_charged_cny": (usage["s"] or 0) / 1_000_000,
            "reconciliation_findings": len(report.drifts)
            + (1 if report.postings_total_micro else 0),
            "faults": [
                {"fault": f["fault"], "healed_s": f["healed_s"] and round(f["healed_s"], 1)}
                for f in self.faults
            ],
            "longest_heal_s": None if None in heals or not heals else round(max(heals), 1),
        }
        (self.dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def shutdown(self):
        self.supervise = False
        self.stop.set()
        for name in list(self.procs):
            self.kill(name)
        self.stop_redis()
        self.stop_pg()


def table(r):
    rows = [
        ("run (minutes)", r["minutes"]),
        ("traffic done", ", ".join(f"{k}: {v}" for k, v in r["traffic"].items())),
        ("answers by code", ", ".join(f"{k}: {v}" for k, v in r["http_answers_by_code"].items())),
        ("no answer / in-process errors", r["no_answer"] or 0),
        ("5xx (during PostgreSQL restart / other)",
         f"{r['5xx_during_pg_restart']} / {r['5xx_other']}"),
        ("usage events accepted / stored / settled",
         f"{r['events_accepted']} / {r['events_stored']} / {r['events_settled']}"),
        ("events lost", r["events_lost"]),
        ("money in: Alipay top-ups (n, CNY)", r["alipay_paid"]),
        ("money out: refunds paid (n, CNY)", r["refunds_paid_out"]),
        ("usage charged (CNY)", r["usage_charged_cny"]),
        ("reconciliation findings", r["reconciliation_findings"]),
        *((f"heal: {f['fault']} (s)", f["healed_s"]) for f in r["faults"]),
        ("longest heal (s)", r["longest_heal_s"]),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main():
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    workdir = Path(os.environ.get("SOAK_DIR") or tempfile.mkdtemp(prefix="portal-soak-"))
    soak = Soak(minutes, workdir)
    try:
        result = soak.run()
    finally:
        soak.shutdown()
    print(table(result), flush=True)
    ok = (
        result["events_lost"] == 0
        and result["events_settled"] == result["events_stored"]
        and result["reconciliation_findings"] == 0
        and result["5xx_other"] == 0
        and result["longest_heal_s"] is not None
        and result["longest_heal_s"] <= 60
    )
    print("target met" if ok else "target NOT met", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
