"""Read paths for balances, lots, grants and usage events (no N+1: one query each)."""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from .micro import from_micro
from .models import (
    Grant,
    GrantState,
    LedgerAccount,
    LedgerTransaction,
    Lot,
    Posting,
    TxnKind,
    UsageEvent,
)


def bucket_micro(account) -> dict[str, int]:
    """{bucket kind: cached balance} of one account; a plain statement (the balance API
    asks it on every call, issue 27: the ORM's compilation cost more than the query)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT kind, balance_micro FROM {LedgerAccount._meta.db_table}"  # noqa: S608
            " WHERE owner_id = %s",
            [account.pk],
        )
        return dict(cur.fetchall())


def balance_summary(account, *, buckets=None, figures=None) -> dict:
    """Money per bucket from the cached balances, and what the user may spend now.

    `available` is what `authorize` answers (billing.services.authorization.money_figures,
    one query): cash + trial + discount, less grants past their expiry that the sweep
    has not ended yet, less arrears, less `pending` (usage received and not settled yet,
    R-USE-5, R-USE-6); never below zero. `buckets` (own_buckets' rows) spares the bucket
    query when the page already read them.
    """
    from .services.authorization import money_figures

    rows = dict(buckets.values()) if buckets is not None else bucket_micro(account)
    cash, trial, discount = rows.get("cash", 0), rows.get("trial", 0), rows.get("discount", 0)
    arrears = -rows.get("arrears", 0)
    # `figures`: money_figures' answer when the caller already read it (the balance API)
    spendable, owed, pending = figures if figures is not None else money_figures(account.pk)
    return {
        "cash": from_micro(cash),
        "trial": from_micro(trial),
        "discount": from_micro(discount),
        "hold": from_micro(rows.get("hold", 0)),
        "arrears": from_micro(arrears),
        # owed to a rights holder after a dispute's deadline refund fell short (R-DIS-3)
        "dispute_debt": from_micro(-rows.get("dispute_debt", 0)),
        "pending": from_micro(pending),
        "available": from_micro(max(0, spendable - owed - pending)),
    }


def balance_api_figures(account_id, now) -> dict:
    """Everything the balance API (billing.me_api, issue 27) reads, in ONE round trip:
    money_figures' figures (the same statement, as a subquery), the cached buckets, the
    nearest expiry of free money, and whether the account has spend limits."""
    from .models import SpendLimit
    from .services.authorization import _FIGURES, figures_from

    sql = f"""
SELECT f.*, b.buckets, e.expires_at, e.amount, l.has_limits FROM ({_FIGURES}) f
CROSS JOIN LATERAL (SELECT json_object_agg(kind, balance_micro) AS buckets
  FROM {LedgerAccount._meta.db_table} WHERE owner_id = %(a)s) b
LEFT JOIN LATERAL (SELECT expires_at, SUM(remaining_micro) AS amount
  FROM {Grant._meta.db_table} WHERE account_id = %(a)s AND state = 'active'
   AND remaining_micro > 0 AND expires_at > %(now)s
  GROUP BY expires_at ORDER BY expires_at LIMIT 1) e ON true
CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM {SpendLimit._meta.db_table}
  WHERE account_id = %(a)s) AS has_limits) l
"""  # noqa: S608 - table names only
    with connection.cursor() as cur:
        cur.execute(sql, {"a": account_id, "now": now})
        row = cur.fetchone()
    buckets = {kind: int(micro) for kind, micro in (row[4] or {}).items()}
    return {
        "figures": figures_from(row),
        "buckets": buckets,
        "next_free_expiry": (row[5], int(row[6])) if row[5] is not None else None,
        "has_limits": bool(row[7]),
    }


def credited(event_ids) -> dict[int, int]:
    """{event id: the transaction that credited it back} for these events, one query."""
    from .services.usage_credits import credits_for

    return credits_for(event_ids)


def pending_events(account, limit=10):
    """The latest usage events of the account not settled yet (the partial index
    billing_charge_pending_acct holds only those)."""
    return list(
        UsageEvent.objects.filter(account_id=account.pk, transaction__isnull=True)
        .select_related("api_key")
        .order_by("-id")[:limit]
    )


def lots_for(account):
    return Lot.objects.filter(account_id=account.pk).order_by("-created_at", "-id")


def grants_for(account):
    return Grant.objects.filter(account_id=account.pk).order_by("-created_at", "-id")


def usage_event_for(request_id: str) -> UsageEvent | None:
    """The usage event recorded for a gateway request id, or None."""
    return UsageEvent.objects.filter(request_id=request_id).first()


# ---------------------------------------------------------------- the user's statement

STATEMENT_PAGE = 50
SPENDABLE = ("cash", "trial", "discount")


EVENTS_PER_LINE = 5  # events shown under one usage line; the rest behind a link
EVENTS_PAGE = 100


@dataclass
class StatementLine:
    """One ledger transaction as the user sees it: what it did to each of their buckets
    and, for usage, the events it settled (R-USE-5: one transaction per account per
    settler chunk, so one line may hold many events; the first EVENTS_PER_LINE are here,
    `event_count` says how many there are)."""

    transaction: LedgerTransaction
    buckets: dict = field(default_factory=dict)  # bucket kind → micro moved
    events: list = field(default_factory=list)
    event_count: int = 0
    lot_ids: list = field(default_factory=list)
    grant_ids: list = field(default_factory=list)

    @property
    def more_events(self) -> int:
        return max(0, self.event_count - len(self.events))

    @property
    def available_micro(self) -> int:
        """The change to spendable money (cash + trial + discount)."""
        return sum(self.buckets.get(kind, 0) for kind in SPENDABLE)

    @property
    def other_buckets(self) -> list[tuple[str, int]]:
        """Moves on buckets that are not spendable (hold, arrears, dispute debt)."""
        return [(k, v) for k, v in self.buckets.items() if k not in SPENDABLE and v]


def paid_by(split) -> list[dict]:
    """An event's split as rows for pages: bucket, the lot or grant id, amount (Money)."""
    from decimal import Decimal

    from djmoney.money import Money

    from core.money import CNY

    return [
        {
            "bucket": item["bucket"],
            "lot": item.get("lot"),
            "grant": item.get("grant"),
            "package": item.get("package"),
            "amount": Money(Decimal(item["amount"]), CNY),
        }
        for item in split or ()
    ]


def _key_events(account, api_key):
    events = UsageEvent.objects.filter(account_id=account.pk)
    if api_key is not None:
        events = events.filter(api_key_id=api_key.pk)
    return events


def _first_events(txn_ids, api_key, cap) -> list[tuple[int, int]]:
    """(event id, how many events its line has) for the first `cap` events of each line.

    Per line one probe of the (transaction, id) index for the `cap` lowest
    ids and one index-only count (LATERAL): a line of 5,000 events costs a count, not
    5,000 rows read (with an index on the transaction alone, the ORDER BY read and
    sorted every event of the line: 0.86 s for 50 lines of 1,000 events, against
    25 ms). The transaction ids come from the account's own statement, and a
    settlement transaction holds only its account's events."""
    key = " AND api_key_id = %s" if api_key is not None else ""
    keys = [api_key.pk] if api_key is not None else []
    sql = (
        "SELECT c.id, n.total FROM unnest(%s::bigint[]) AS t(id)"  # noqa: S608 (constant)
        " CROSS JOIN LATERAL (SELECT id FROM billing_usageevent"
        f" WHERE transaction_id = t.id{key} ORDER BY id LIMIT %s) c"
        " CROSS JOIN LATERAL (SELECT COUNT(*) AS total FROM billing_usageevent"
        f" WHERE transaction_id = t.id{key}) n"
    )
    ids = "{" + ",".join(str(int(pk)) for pk in txn_ids) + "}"
    with connection.cursor() as cur:
        cur.execute(sql, [ids, *keys, cap, *keys])
        return cur.fetchall()


def _attach_events(lines: dict, account, api_key, cap=EVENTS_PER_LINE):
    """The first `cap` events of each usage line and how many it has (two queries
    whatever the lines hold), and which of them were credited back (one more)."""
    usage = [pk for pk, line in lines.items() if line.transaction.kind == TxnKind.USAGE]
    if not usage:
        return
    totals = dict(_first_events(usage, api_key, cap))
    if not totals:
        return
    shown = list(
        UsageEvent.objects.filter(pk__in=list(totals)).select_related("api_key").order_by("id")
    )
    from .services.usage_credits import credits_for

    credited = credits_for([e.pk for e in shown])
    for event in shown:
        line = lines[event.transaction_id]
        line.events.append(event)
        line.event_count = totals[event.pk]
        event.credit_id = credited.get(event.pk)
        event.paid = paid_by(event.split)


def own_buckets(account) -> dict[int, tuple[str, int]]:
    """The account's ledger accounts: id → (kind, cached balance), one query; pass it to
    `statement` and `daily_history` when a page shows both."""
    return {
        pk: (kind, micro)
        for pk, kind, micro in LedgerAccount.objects.filter(owner_id=account.pk).values_list(
            "id", "kind", "balance_micro"
        )
    }


def statement(
    account,
    *,
    kind="",
    since=None,
    until=None,
    api_key=None,
    before=None,
    limit=STATEMENT_PAGE,
    buckets=None,
):
    """A page of the account's ledger movements, newest first, and the cursor of the next
    page (None at the end). Keyset paging on the transaction id: no COUNT(*), and four
    queries whatever the page or the table size."""
    txns = LedgerTransaction.objects.filter(account_id=account.pk)
    if kind:
        txns = txns.filter(kind=kind)
    if since is not None:
        txns = txns.filter(created_at__gte=since)
    if until is not None:
        txns = txns.filter(created_at__lt=until)
    if api_key is not None:
        # usage lines holding at least one event of that key (a line holds many events;
        # EXISTS, not a join, so a line is never listed twice)
        txns = txns.filter(
            Exists(UsageEvent.objects.filter(transaction_id=OuterRef("pk"), api_key_id=api_key.pk))
        )
    if before:
        txns = txns.filter(id__lt=before)
    page = list(txns.order_by("-id")[: limit + 1])
    next_before = page[limit - 1].pk if len(page) > limit else None
    lines = {t.pk: StatementLine(t) for t in page[:limit]}
    if not lines:
        return [], None
    own = buckets if buckets is not None else own_buckets(account)
    rows = Posting.objects.filter(
        transaction_id__in=list(lines), ledger_account_id__in=list(own)
    ).values_list("transaction_id", "bucket", "amount_micro", "lot_id", "grant_id")
    for txn_id, bucket, micro, lot_id, grant_id in rows:
        line = lines[txn_id]
        line.buckets[bucket] = line.buckets.get(bucket, 0) + micro
        if lot_id and lot_id not in line.lot_ids:
            line.lot_ids.append(lot_id)
        if grant_id and grant_id not in line.grant_ids:
            line.grant_ids.append(grant_id)
    _attach_events(lines, account, api_key)
    return list(lines.values()), next_before


def line_events(account, txn_id, *, api_key=None, after=None, limit=EVENTS_PAGE):
    """One usage line's events (the user's own only), oldest first, keyset paged by id,
    and the cursor of the next page: the "N more" of a statement line. None when the
    transaction is not one of this account's usage lines."""
    txn = LedgerTransaction.objects.filter(
        pk=txn_id, account_id=account.pk, kind=TxnKind.USAGE
    ).first()
    if txn is None:
        return None, [], None
    events = _key_events(account, api_key).filter(transaction_id=txn.pk)
    if after:
        events = events.filter(id__gt=after)
    page = list(events.select_related("api_key").order_by("id")[: limit + 1])
    next_after = page[limit - 1].pk if len(page) > limit else None
    page = page[:limit]
    from .services.usage_credits import credits_for

    credited = credits_for([e.pk for e in page])
    for event in page:
        event.credit_id = credited.get(event.pk)
        event.paid = paid_by(event.split)
    return txn, page, next_after


def events_of(account, txn_ids, *, api_key=None):
    """Every event of these usage lines, newest line first and in id order within a line,
    read lazily in chunks (the CSV export streams them)."""
    return (
        _key_events(account, api_key)
        .filter(transaction_id__in=list(txn_ids))
        .select_related("api_key")
        .order_by("-transaction_id", "id")
        .iterator(chunk_size=2000)
    )


def daily_history(account, days: int, today, *, buckets=None):
    """(day, spendable balance at the end of the day, consumption that day) for the last
    `days` local days up to `today`: two GROUP BY queries, then walked back from the
    cached balance (R-LED-4)."""
    tz = timezone.get_current_timezone()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min), tz)
    own = buckets if buckets is not None else own_buckets(account)
    spendable = {pk: micro for pk, (kind, micro) in own.items() if kind in SPENDABLE}
    net = dict(
        Posting.objects.filter(
            ledger_account_id__in=list(spendable), transaction__created_at__gte=start
        )
        .annotate(day=TruncDate("transaction__created_at", tzinfo=tz))
        .values_list("day")
        .annotate(total=Sum("amount_micro"))
        .values_list("day", "total")
    )
    used = dict(
        UsageEvent.objects.filter(account_id=account.pk, created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day")
        .annotate(total=Sum("amount_micro"))
        .values_list("day", "total")
    )
    balance = sum(spendable.values())
    out = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        out.append((day, balance, used.get(day, 0)))
        balance -= net.get(day, 0)
    return list(reversed(out))


# ---------------------------------------------------------------- for the console's pages


def recent_events(account, limit):
    """The account's latest usage events with their keys, newest first, one query."""
    return list(
        UsageEvent.objects.filter(account_id=account.pk)
        .select_related("api_key")
        .order_by("-id")[:limit]
    )


def expiring_grants(account, within, *, limit=5):
    """Active grants with money left that expire within `within` from now, soonest
    first, one query."""
    now = timezone.now()
    return list(
        Grant.objects.filter(
            account_id=account.pk,
            state=GrantState.ACTIVE,
            remaining_micro__gt=0,
            expires_at__gt=now,
            expires_at__lte=now + within,
        ).order_by("expires_at")[:limit]
    )


def usage_since(start):
    """(how many usage events arrived since `start`, what they cost as Money), one query.
    created_at is not indexed on usage events and their ids are, rising with time: the
    count starts at the period's first id."""
    # the last id before the period, read newest first: the walk covers the period's rows
    # only (reading the oldest first walked the whole history before today)
    before = UsageEvent.objects.filter(created_at__lt=start).order_by("-id").values("id")[:1]
    row = UsageEvent.objects.filter(id__gt=Coalesce(Subquery(before), Value(0))).aggregate(
        n=Count("pk"), total=Sum("amount_micro")
    )
    return row["n"], from_micro(row["total"] or 0)


@dataclass
class UsageTotal:
    """One row of `usage_totals`: a Beijing day, a model or an API key (None: calls
    without a key), with what it consumed."""

    key: object
    calls: int
    amount_micro: int
    input_tokens: int
    output_tokens: int

    @property
    def amount(self):
        return from_micro(self.amount_micro)


USAGE_GROUPS = {"day": "day", "model": "model", "key": "api_key_id"}


def usage_totals(account_id, *, start, end, by, model=None, api_key_id=None) -> list[UsageTotal]:
    """Settled usage of one account from the daily rollup (billing.models.DailyUsage),
    one query, never the events: per Beijing day (ascending), per model or per API key
    (largest amount first). `start` and `end` are Beijing dates, both included;
    `model` and `api_key_id` narrow it."""
    if by not in USAGE_GROUPS:
        raise ValueError(f"by must be one of {sorted(USAGE_GROUPS)}")
    from .models import DailyUsage

    col = USAGE_GROUPS[by]
    qs = DailyUsage.objects.filter(account_id=account_id, day__gte=start, day__lte=end)
    if model:
        qs = qs.filter(model=model)
    if api_key_id:
        qs = qs.filter(api_key_id=api_key_id)
    qs = qs.values(col).annotate(
        c=Sum("calls"), a=Sum("amount_micro"), i=Sum("input_tokens"), o=Sum("output_tokens")
    )
    qs = qs.order_by(col) if by == "day" else qs.order_by("-a", col)
    return [UsageTotal(r[col], int(r["c"]), int(r["a"]), int(r["i"]), int(r["o"])) for r in qs]


def usage_models(account_id, *, start, end) -> list[str]:
    """The models an account used between two Beijing dates (for the usage page's filter)."""
    from .models import DailyUsage

    return list(
        DailyUsage.objects.filter(account_id=account_id, day__gte=start, day__lte=end)
        .order_by("model")
        .values_list("model", flat=True)
        .distinct()
    )


def user_ids_for_request(request_id: str) -> list[int]:
    """The user a gateway request id was charged to (exact: the unique index), for the
    staff's customer search."""
    request_id = (request_id or "").strip()
    if not request_id:
        return []
    rows = UsageEvent.objects.filter(request_id=request_id)
    return list(rows.values_list("account__user_id", flat=True)[:1])


# ---------------------------------------------------------------- packages and limits (issue 23)


def package_names(holding_ids) -> dict[int, str]:
    """Holding id → the package's name in the current language (R-PKG-3: splits name it)."""
    from .models import PackageHolding

    return {
        h.pk: h.package.name()
        for h in PackageHolding.objects.filter(pk__in=list(holding_ids)).select_related("package")
    }


def packages_on_sale(now=None):
    from .services.packages import on_sale

    return on_sale(now)


def holdings_of(account, *, limit=50):
    """The account's resource packages, active first (soonest expiry), then ended."""
    from .models import PackageHolding

    return list(
        PackageHolding.objects.filter(account=account)
        .select_related("package")
        .order_by("state", "expires_at", "id")[:limit]
    )


def spend_limits_of(account, now=None) -> list[dict]:
    """The account's spend limits with the current period's spend (R-USE-7)."""
    from .services.limits import spend_overview

    return spend_overview(account, now)


PENDING_SHOWN = 10_000


def pending_backlog(cap: int = PENDING_SHOWN) -> dict:
    """The usage list's pending summary, bounded: counts and sums at most `cap` + 1
    pending events, oldest first, through the partial index of pending rows (a backlog
    is seconds of traffic; the admin never counts a flood whole). `capped` says the
    figures are a floor."""
    first = (
        UsageEvent.objects.filter(transaction__isnull=True)
        .order_by("id")
        .values("id", "amount_micro", "created_at")[: cap + 1]
    )
    with connection.cursor() as cur:
        sql, params = first.query.sql_with_params()
        cur.execute(
            f"SELECT COUNT(*), COALESCE(SUM(amount_micro), 0), MIN(created_at) FROM ({sql}) p",  # noqa: S608
            params,
        )
        events, micro, oldest = cur.fetchone()
    age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    return {
        "events": min(events, cap),
        "capped": events > cap,
        "amount": from_micro(micro),
        "oldest_age": age,
    }
