"""Spend limits (R-USE-7): caps the user sets on the account and on each API key, per
calendar month or day in Beijing time, hard (authorize refuses) or soft (notices only).

Spend = settled + pending usage of the period, whatever paid for it (resource packages
included). The settled part is a counter on the limit row (`SpendLimit.spent_micro` for
`period_start`), moved by settlement (`count_spend`) in the transaction that settles the
events, under the account's locks; a new period starts it at zero the first time an event
of that period settles, and `authorize` reads a counter of an older period as zero, so
the next period allows again with no job. The pending part comes from the pending index,
in the same query as the balance (billing.services.authorization).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

from ..micro import FEN_MICRO, from_micro, to_micro
from ..models import LimitPeriod, SpendLimit
from .engine import LedgerError, in_ids

BEIJING = ZoneInfo("Asia/Shanghai")


def yuan(micro) -> str:
    """Micro-units as a CNY figure with 2 places, for notices."""
    return f"{Decimal(int(micro)) / 1_000_000:.2f}"


NOTICE_LEVELS = (50, 80, 100)


def period_start(period: str, now=None) -> dt.date:
    """The first day (Beijing time) of the period `now` falls in."""
    day = (now or timezone.now()).astimezone(BEIJING).date()
    return day.replace(day=1) if period == LimitPeriod.MONTH else day


def period_end(period: str, start: dt.date) -> dt.datetime:
    """When the period that began on `start` ends (the limit resets), aware."""
    if period == LimitPeriod.MONTH:
        nxt = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    else:
        nxt = start + dt.timedelta(days=1)
    return dt.datetime.combine(nxt, dt.time.min, tzinfo=BEIJING)


def ceiling_micro() -> int:
    return to_micro(Decimal(str(getattr(settings, "SPEND_LIMIT_MAX", "1000000.00"))))


def parse_limit(value) -> int:
    """A limit typed by a user → micro-units: positive, whole fen, at most the ceiling
    (settings.SPEND_LIMIT_MAX); otherwise LedgerError with a stable code."""
    try:
        amount = Decimal(str(value).strip())
    except Exception:
        raise LedgerError("Enter an amount in CNY, e.g. 100.00.", code="invalid_amount")
    if not amount.is_finite() or amount <= 0:
        raise LedgerError("The limit must be greater than zero.", code="non_positive_amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise LedgerError("The limit must be whole fen (2 places).", code="too_many_decimals")
    micro = int(amount * 1_000_000)
    if micro > ceiling_micro():
        raise LedgerError("The limit is above the highest allowed.", code="limit_too_large")
    assert micro % FEN_MICRO == 0
    return micro


def settled_spend(account_id, key_id, period, start) -> int:
    """Settled usage of the scope since `start` (Beijing day), from the daily rollup."""
    sql = (
        "SELECT COALESCE(SUM(amount_micro), 0) FROM billing_dailyusage"
        " WHERE account_id = %s AND day >= %s"
    )
    params = [account_id, start]
    if key_id is not None:
        sql += " AND api_key_id = %s"
        params.append(key_id)
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return int(cur.fetchone()[0])


_LIMITS_OF = (
    "SELECT id, account_id, api_key_id, period, limit_micro, hard, period_start, spent_micro,"
    " notified_pct FROM billing_spendlimit WHERE {where}"
)


def count_spend(events, now) -> None:
    """Settlement's part (R-USE-7): add just-settled events to the counters of their
    accounts' limits, in the settlement's transaction (the accounts are locked), and send
    the 50/80/100 % notices once per limit per period. One query when no account of the
    chunk has a limit."""
    if not events:
        return
    where, params = in_ids("account_id", {ev.account_id for ev in events})
    with connection.cursor() as cur:
        cur.execute(_LIMITS_OF.format(where=where), params)
        rows = cur.fetchall()
    if not rows:
        return
    by_account: dict[int, list] = {}
    for row in rows:
        by_account.setdefault(row[1], []).append(list(row))
    changed, crossings = {}, []
    for ev in events:
        for lim in by_account.get(ev.account_id, ()):
            pk, _a, key_id, period, limit, _hard, start, spent, pct = lim
            if key_id is not None and key_id != ev.api_key_id:
                continue
            ev_start = period_start(period, ev.received_at)
            if ev_start < start:
                continue  # an older period's event settled late: that period is over
            if ev_start > start:
                lim[6], lim[7], lim[8] = ev_start, 0, 0  # a new period starts at zero
            lim[7] += ev.micro
            changed[pk] = lim
    for lim in changed.values():
        reached = max([lv for lv in NOTICE_LEVELS if lim[7] * 100 >= lv * lim[4]], default=0)
        if reached > lim[8]:
            crossings.append((lim, reached))
            lim[8] = reached
    if not changed:
        return
    values = [
        {"id": lim[0], "start": lim[6].isoformat(), "spent": lim[7], "pct": lim[8]}
        for lim in sorted(changed.values())
    ]
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE billing_spendlimit s SET period_start = v.start, spent_micro = v.spent,"
            " notified_pct = v.pct FROM json_to_recordset(%s::json)"
            " AS v(id bigint, start date, spent bigint, pct int) WHERE s.id = v.id",
            [json.dumps(values)],
        )
    for lim, level in crossings:
        _notify(lim, level)


def _notify(lim, level):
    from accounts.models import BalanceAccount
    from notices.services import send_notice

    pk, account_id, key_id, period, limit, hard, start, spent, _pct = lim
    account = BalanceAccount.objects.select_related("user").get(pk=account_id)
    send_notice(
        user=account.user,
        kind="spend_limit_reached",
        context={
            "level": level,
            "period": period,
            "limit": yuan(limit),
            "spent": yuan(spent),
            "hard": hard,
            "key_id": key_id,
            "resets_at": period_end(period, start),
        },
        dedupe_key=f"spend_limit:{pk}:{start.isoformat()}:{level}",
    )


# ---------------------------------------------------------------- authorize's check


def hard_limit_refusal(limits, unsettled, key_unsettled, now):
    """The first hard limit reached, as a dict for the answer, or None. `limits` are
    (id, api_key_id, period, limit_micro, period_start, spent_micro) rows as authorize
    read them; a counter of an older period counts as zero (the period reset)."""
    for pk, key_id, period, limit, start, spent in limits or ():
        if isinstance(start, str):
            start = dt.date.fromisoformat(start)
        current = period_start(period, now)
        settled = spent if start == current else 0
        used = settled + (key_unsettled if key_id is not None else unsettled)
        if used >= limit:
            return {
                "id": pk,
                "scope": "key" if key_id is not None else "account",
                "period": period,
                "limit": from_micro(limit),
                "spent": from_micro(used),
                "resets_at": period_end(period, current),
            }
    return None


def spend_overview(account, now=None) -> list[dict]:
    """The account's limits with the spend of the current period (settled + pending),
    for the pages (the user's and staff's)."""
    now = now or timezone.now()
    limits = list(SpendLimit.objects.filter(account=account).select_related("api_key"))
    if not limits:
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT api_key_id, SUM(amount_micro) FROM billing_usageevent"
            " WHERE account_id = %s AND transaction_id IS NULL GROUP BY api_key_id",
            [account.pk],
        )
        pending_by_key = {k: int(v) for k, v in cur.fetchall()}
    all_pending = sum(pending_by_key.values())
    out = []
    for lim in limits:
        current = period_start(lim.period, now)
        settled = lim.spent_micro if lim.period_start == current else 0
        pending = pending_by_key.get(lim.api_key_id, 0) if lim.api_key_id else all_pending
        used = settled + pending
        out.append(
            {
                "limit": lim,
                "spent": from_micro(used),
                "pct": min(999, used * 100 // lim.limit_micro),
                "reached": used >= lim.limit_micro,
                "resets_at": period_end(lim.period, current),
            }
        )
    return out
