"""A worker process for tests/hardening/test_job_kill.py: registers a slow job and runs it.

Run as `python -m tests.hardening.killable_worker` with DATABASE_URL pointing at the test
database; each batch marks one row and then sleeps, so the test can kill it mid-job."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from ops.services import run_job  # noqa: E402
from tests.hardening.slow_job import register  # noqa: E402

register()
print("starting", flush=True)
run = run_job("test_killable_job")
print("finished", run.status, flush=True)
sys.exit(0)
