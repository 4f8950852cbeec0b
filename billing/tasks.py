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

Scaling out: settings.USAGE_SETTLERS chains ("lanes") run at once, each its own key, on
whichever workers take them (one host or many; a worker needs a free process for each
lane it runs). Each stretch settles the accounts of the slots it holds
(settlement.SettlerSlots: PostgreSQL advisory locks), so the lanes settle disjoint
accounts; a lane whose worker died frees its slots with its database session and the
others take them over within seconds, until the watchdog restarts the lane.
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


def lanes() -> int:
    """How many continuous settler chains run at once (settings.USAGE_SETTLERS)."""
    return max(1, int(getattr(settings, "USAGE_SETTLERS", 1)))


def lane_key(lane: int = 0) -> str:
    return CHAIN_KEY if not lane else f"{CHAIN_KEY}:{lane}"


def chain_alive(lane: int = 0) -> bool:
    return cache.get(lane_key(lane)) is not None


@shared_task(name=TASK_NAME, bind=True, ignore_result=True)
def settle_usage_continuously(self, chain=None, lane=0):
    """One stretch of the continuous settler; queues the next one when it is done."""
    from .services.settlement import run_settler

    seconds = float(settings.USAGE_SETTLER_SECONDS)
    if seconds <= 0 or lane >= lanes():
        return 0  # off, or a lane left over from a larger USAGE_SETTLERS
    key = lane_key(lane)
    if chain is None or cache.get(key) != chain:
        chain = secrets.token_hex(8)
        if not cache.add(key, chain, timeout=_hold_seconds()):
            return 0  # another chain runs
    else:
        cache.set(key, chain, timeout=_hold_seconds())
    settled = run_settler(seconds=seconds, slots=True)
    self.apply_async(kwargs={"chain": chain, "lane": lane})
    return settled


def start_chain() -> bool:
    """Queue every continuous settler lane that is not alive; True when one was queued."""
    if float(settings.USAGE_SETTLER_SECONDS) <= 0:
        return False
    started = False
    for lane in range(lanes()):
        if not chain_alive(lane):
            settle_usage_continuously.delay(**({"lane": lane} if lane else {}))
            started = True
    return started
