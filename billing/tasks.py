"""The continuous usage settler as a Celery task (R-USE-5).

`settle_usage_continuously` settles for settings.USAGE_SETTLER_SECONDS, then queues its
own next stretch before it returns, so settlement never pauses between stretches (a
beat-scheduled job that ran for 55 s of every minute would leave a gap each minute).
One chain at a time: each stretch holds a cache key that names its chain; a second
chain started by mistake finds the key taken and stops (two settlers would still be
correct, SKIP LOCKED, just wasteful). The `settle_usage` job (every minute) is the
watchdog: it drains what is pending and restarts the chain when its key has expired
(a worker killed mid-stretch). Without a working cache no chain can hold the key, and
the minute job alone settles: slower, still exact.
"""

from __future__ import annotations

import secrets

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

CHAIN_KEY = "billing:settler-chain"
TASK_NAME = "billing.settle_usage_continuously"


def _hold_seconds() -> int:
    return int(settings.USAGE_SETTLER_SECONDS) + 30


def chain_alive() -> bool:
    return cache.get(CHAIN_KEY) is not None


@shared_task(name=TASK_NAME, bind=True, ignore_result=True)
def settle_usage_continuously(self, chain=None):
    """One stretch of the continuous settler; queues the next one when it is done."""
    from .services.settlement import run_settler

    seconds = float(settings.USAGE_SETTLER_SECONDS)
    if seconds <= 0:
        return 0
    if chain is None or cache.get(CHAIN_KEY) != chain:
        chain = secrets.token_hex(8)
        if not cache.add(CHAIN_KEY, chain, timeout=_hold_seconds()):
            return 0  # another chain runs
    else:
        cache.set(CHAIN_KEY, chain, timeout=_hold_seconds())
    settled = run_settler(seconds=seconds)
    self.apply_async(kwargs={"chain": chain})
    return settled


def start_chain() -> bool:
    """Queue the continuous settler unless a chain is alive; True when one was queued."""
    if float(settings.USAGE_SETTLER_SECONDS) <= 0 or chain_alive():
        return False
    settle_usage_continuously.delay()
    return True
