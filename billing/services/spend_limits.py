"""Setting and removing spend limits (R-USE-7): the user's service.

Apart from the rules in limits.py (what a limit refuses, how spend is counted) because
setting a limit settles the account's pending usage first (settlement.lock_and_settle),
and settlement itself counts spend through limits.py: one direction of import each.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import LimitPeriod, SpendLimit
from .engine import LedgerError
from .limits import NOTICE_LEVELS, parse_limit, period_start, settled_spend
from .settlement import lock_and_settle


def set_spend_limit(*, account, api_key=None, period: str, amount, hard: bool) -> SpendLimit:
    """Set (or change) the account's or a key's limit for a period. The settled spend
    of the current period is counted under the account's locks (settling pending usage
    first), so settlement and this never disagree about the counter."""
    if period not in LimitPeriod.values:
        raise LedgerError("Choose monthly or daily.", code="invalid_period")
    if api_key is not None and api_key.account_id != account.pk:
        raise LedgerError("This API key is not yours.", code="foreign_api_key")
    micro = parse_limit(amount)
    now = timezone.now()
    with transaction.atomic():
        lock_and_settle([account.pk])
        start = period_start(period, now)
        spent = settled_spend(account.pk, api_key.pk if api_key else None, period, start)
        reached = max([lvl for lvl in NOTICE_LEVELS if spent * 100 >= lvl * micro], default=0)
        row, _ = SpendLimit.objects.update_or_create(
            account=account,
            api_key=api_key,
            period=period,
            defaults={
                "limit_micro": micro,
                "hard": bool(hard),
                "period_start": start,
                "spent_micro": spent,
                "notified_pct": reached,
            },
        )
        return row


def remove_spend_limit(*, account, limit_id) -> bool:
    with transaction.atomic():
        deleted, _ = SpendLimit.objects.filter(account=account, pk=limit_id).delete()
        return bool(deleted)
