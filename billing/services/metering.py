"""Metering: storing the gateway's usage events (R-USE-1, R-USE-5).

Recording an event takes no balance locks and writes no postings: one set-based
INSERT of every event of a request and one commit, however many events there are.
The settler (billing.services.settlement) settles them seconds later, and the ledger
transactions are written by billing.services.engine, never here.

Still refused at ingestion, storing nothing: a locked or revoked key and an account
that may not consume (R-ACC-6, R-ACC-8; both read in the same query that resolved
the key, at request time, never cached). A request id seen before answers
`replayed` with the first event when the amount and key match, and
`request_id_conflict` otherwise (R-LED-5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils.translation import gettext_noop

from accounts.models import ApiKey, ApiKeyState, BalanceAccount
from accounts.standing import ALLOWED, Action

from .authorization import REFUSAL_MESSAGES, KeyRef, consumption_refusal
from .engine import in_texts, retry_transaction

CONFLICT = (
    "request_id_conflict",
    gettext_noop("This request id was already used for another call."),
)
# the standings that may consume, from the one standing table (accounts.standing)
CONSUMING_STANDINGS = sorted(s for s, allowed in ALLOWED.items() if Action.CONSUME in allowed)


@dataclass
class ReportedUsage:
    """One call as the gateway reports it (already parsed: amount in micro-units)."""

    request_id: str
    api_key: KeyRef
    model: str
    micro: int
    occurred_at: object = None  # aware datetime or None
    input_tokens: int | None = None  # optional, as the gateway reports them
    output_tokens: int | None = None


@dataclass
class Recorded:
    """What ingestion answers for one event."""

    request_id: str
    status: str  # accepted, replayed or error
    micro: int = 0
    code: str | None = None
    message: str | None = None


def record_usage(events: list[ReportedUsage]) -> list[Recorded]:
    """Store the events (one INSERT, one commit) and answer one Recorded per event, in
    order. Duplicates within the request answer like replays of the first."""
    if not events:
        return []

    def run():
        with transaction.atomic(durable=True):
            return _record(events)

    return retry_transaction(run, label="usage_ingest")


def _record(events):
    results: list[Recorded | None] = [None] * len(events)
    fresh = []
    for i, ev in enumerate(events):
        refusal = consumption_refusal(ev.api_key.state, ev.api_key.standing)
        if refusal:
            results[i] = Recorded(
                ev.request_id, "error", code=refusal, message=REFUSAL_MESSAGES[refusal]
            )
        else:
            fresh.append(i)
    inserted = _insert([events[i] for i in fresh]) if fresh else set()
    # every event not inserted now: a replay, a conflict, or (refused) a replay of an
    # event stored before the key or account was stopped, which still answers as first
    first_seen: dict[str, int] = {}
    lookup = set()
    for i in fresh:
        rid = events[i].request_id
        if rid in inserted and rid not in first_seen:
            first_seen[rid] = i
            results[i] = Recorded(rid, "accepted", events[i].micro)
        else:
            lookup.add(rid)
    lookup.update(events[i].request_id for i, r in enumerate(results) if r and r.status == "error")
    stored = _stored(lookup) if lookup else {}
    for i, ev in enumerate(events):
        if results[i] is not None and results[i].status == "accepted":
            continue
        prior = stored.get(ev.request_id)
        if prior is None:
            if results[i] is None:  # refused at insert time: the key or account stopped
                code = _refusal_now(ev.api_key.pk)
                results[i] = Recorded(
                    ev.request_id,
                    "error",
                    code=code or "retry",
                    message=REFUSAL_MESSAGES.get(code, gettext_noop("Please retry.")),
                )
            continue
        key_id, micro = prior
        if key_id == ev.api_key.pk and micro == ev.micro:
            results[i] = Recorded(ev.request_id, "replayed", micro)
        elif results[i] is None:
            results[i] = Recorded(ev.request_id, "error", code=CONFLICT[0], message=CONFLICT[1])
    return results


def _refusal_now(key_id):
    """Why the insert's condition refused this key's events (R-USE-6), read again now."""
    row = ApiKey.objects.filter(pk=key_id).values_list("state", "account__standing").first()
    return consumption_refusal(*row) if row else "key_revoked"


def _stored(request_ids) -> dict[str, tuple[int, int]]:
    where, params = in_texts("request_id", request_ids)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT request_id, api_key_id, amount_micro FROM billing_usageevent WHERE {where}",  # noqa: S608
            params,
        )
        return {rid: (key, micro) for rid, key, micro in cur.fetchall()}


# Every event is stamped as received by the database clock *after* the statement holds
# the ingestion gate in shared mode (any number of ingestions at once, no waiting on each
# other). The grant expiry sweep takes the gate exclusively for an instant before it
# looks for pending usage (billing.services.settlement.settle_before_expiry, run by
# billing.services.ledger.expire_due_grants): every ingestion stamped before that
# instant has committed by then, and every later one is stamped after it, so no event
# received before a grant's expiry can commit after the sweep passed it by (R-USE-5).
INGEST_GATE = 1_456_117_001  # the advisory lock's key

# R-USE-6 (issue 24): the INSERT stores an event only if, at insert time, its key is
# active and its account may consume, read under FOR KEY SHARE of both rows. A standing
# change or key transition takes FOR UPDATE of its row (core.workflow.apply_transition)
# before its UPDATE, which conflicts with KEY SHARE both ways: either the ingestion holds
# the rows first and the freeze/lock waits for it to commit (its events were received and
# committed before the freeze committed), or the ingestion waits for the freeze's commit
# and READ COMMITTED re-checks the WHERE on the row's new version, storing nothing. The
# settler's FOR NO KEY UPDATE of the account row and a key's last-used UPDATE do not
# conflict with KEY SHARE, so ingestions never wait on settlement. Events are stamped
# as received only once the rows are locked.
_INSERT = f"""
WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(%(gate)s)),
     live AS MATERIALIZED (
       SELECT k.id AS key, k.account_id AS account
         FROM gate, {ApiKey._meta.db_table} k
         JOIN {BalanceAccount._meta.db_table} a ON a.id = k.account_id
        WHERE k.id = ANY(%(keys)s) AND k.state = %(key_state)s AND a.standing = ANY(%(standings)s)
        ORDER BY k.id
          FOR KEY SHARE OF k, a),
     received AS MATERIALIZED (
       SELECT clock_timestamp() AS at FROM gate, (SELECT count(*) FROM live) AS locked)
INSERT INTO billing_usageevent
       (request_id, account_id, api_key_id, model, amount_micro, trial_micro, discount_micro,
        cash_micro, arrears_micro, split, created_at, occurred_at, input_tokens, output_tokens)
SELECT e.rid, e.account, e.key, e.model, e.amount, 0, 0, 0, 0, '[]'::jsonb, received.at,
       COALESCE(e.occurred, received.at), e.tin, e.tout
  FROM received, json_to_recordset(%(events)s::json)
       AS e(rid text, account bigint, key bigint, model text, amount bigint, occurred timestamptz,
            tin bigint, tout bigint)
  JOIN live ON live.key = e.key AND live.account = e.account
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id
"""  # noqa: S608 (the table names come from the models)


def _insert(events) -> set[str]:
    """Insert the events that are new; returns the request ids inserted."""
    rows = [
        {
            "rid": ev.request_id,
            "account": ev.api_key.account_id,
            "key": ev.api_key.pk,
            "model": ev.model,
            "amount": ev.micro,
            "occurred": ev.occurred_at.isoformat() if ev.occurred_at else None,
            "tin": ev.input_tokens,
            "tout": ev.output_tokens,
        }
        for ev in events
    ]
    with connection.cursor() as cur:
        cur.execute(
            _INSERT,
            {
                "gate": INGEST_GATE,
                "events": json.dumps(rows),
                "keys": sorted({ev.api_key.pk for ev in events}),
                "key_state": ApiKeyState.ACTIVE.value,
                "standings": CONSUMING_STANDINGS,
            },
        )
        return {row[0] for row in cur.fetchall()}
