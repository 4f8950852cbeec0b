"""Ledger movements other apps trigger on a balance: paid money in (lots), free
funds in and out (grants: issue, expiry, void), and reversals (R-LED-1 … R-LED-6).
Refund holds and their payout are in billing.services.refund_holds.

Each function is one database transaction and idempotent on its key: a replay
returns the first result and moves nothing (R-LED-5). They are called inside the
caller's transaction (a top-up's payment, a refund's decision, a promotion's end)
and use a plain atomic block so they commit together with the caller's change.
Every one of them takes its locks through `settlement.lock_and_settle`, in the ledger's lock
order (billing/README.md, "Lock order"); `expire_due_grants` locks bucket rows only
(SKIP LOCKED), see there. None of them writes the books itself: they hand their
entries to billing.services.engine, the one writer (`write`, and for the bulk expiry
`write_grant_expiries`).

Consumption lives in billing.services.metering (recording usage) and
billing.services.settlement (settling it), prepaid purchases in
billing.services.purchases; the proof that cache == ledger in billing.services.reconcile.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..chart import platform_account_id
from ..micro import from_micro
from ..models import (
    AccountKind,
    Channel,
    Grant,
    GrantKind,
    GrantState,
    LedgerTransaction,
    Lot,
    TxnKind,
)
from .engine import (
    Entry,
    LedgerError,
    Leg,
    replayed,
    run_idempotent,
    write,
    write_grant_expiries,
)
from .engine import positive_micro as _positive_micro
from .settlement import lock_and_settle, settle_before_expiry

__all__ = [
    "LedgerError",
    "credit_lot",
    "grant_funds",
    "expire_grant",
    "expire_due_grants",
    "void_grant",
    "reverse_transaction",
]


# ---------------------------------------------------------------- top-ups and grants


def credit_lot(
    account,
    amount,
    *,
    channel: str,
    idempotency_key: str,
    payer_name: str = "",
    payer_account: str = "",
    third_party: bool = False,
    memo: str = "",
) -> Lot:
    """Paid money arrives: payment clearing[channel] → a new cash lot.

    Any arrears are paid first (R-USE-3): that part of the lot goes to the
    arrears bucket. Then an open dispute debt (R-DIS-3, R-DIS-5): that part goes to
    the dispute-debt bucket, and the rights holder's claim on it becomes payable
    (claims → rights-holder payable; the disputes app passes it on). The lot keeps
    only the rest.
    """
    micro = _positive_micro(amount, whole_fen=True)
    if channel not in Channel.values:
        raise LedgerError(f"Unknown payment channel {channel!r}.", code="unknown_channel")

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            lot = Lot.objects.create(
                account_id=account.pk,
                channel=channel,
                amount=from_micro(micro),
                payer_name=payer_name[:200],
                payer_account=payer_account[:200],
                third_party=third_party,
                idempotency_key=idempotency_key,
                memo=memo[:200],
            )
            pays_arrears = min(buckets.arrears_micro, micro)
            pays_debt = min(-buckets.micro("dispute_debt"), micro - pays_arrears)
            legs = [Leg(platform_account_id(AccountKind.CLEARING, channel), "clearing", -micro)]
            if pays_arrears:
                legs.append(Leg(buckets["arrears"].pk, "arrears", pays_arrears, lot_id=lot.pk))
            if pays_debt:
                legs += [
                    Leg(buckets["dispute_debt"].pk, "dispute_debt", pays_debt, lot_id=lot.pk),
                    Leg(
                        platform_account_id(AccountKind.DISPUTE_CLAIMS),
                        "dispute_claims",
                        -pays_debt,
                    ),
                    Leg(
                        platform_account_id(AccountKind.RIGHTS_HOLDER_PAYABLE),
                        "rights_holder_payable",
                        pays_debt,
                    ),
                ]
            rest = micro - pays_arrears - pays_debt
            if pays_debt:  # issue 24: passed on to the rights holder when this commits
                from .dispute_funds import announce_debt_paid

                announce_debt_paid(account.pk)
            if rest:
                legs.append(Leg(buckets["cash"].pk, "cash", rest, lot_id=lot.pk))
            write(
                [
                    Entry(
                        TxnKind.TOP_UP,
                        account.pk,
                        legs,
                        idempotency_key=f"lot:{idempotency_key}",
                        memo=memo or f"Top-up via {channel}",
                    )
                ]
            )
            lot.remaining_micro = rest
            return lot

    return run_idempotent(lambda: Lot.objects.filter(idempotency_key=idempotency_key).first(), run)


def grant_funds(
    account,
    amount,
    *,
    kind: str,
    expires_at,
    idempotency_key: str,
    source_lot: Lot | None = None,
    memo: str = "",
) -> Grant:
    """Free funds: promotion expense → a trial or discount grant."""
    micro = _positive_micro(amount)
    if kind not in GrantKind.values:
        raise LedgerError(f"Unknown grant kind {kind!r}.", code="unknown_grant_kind")
    if source_lot is not None and source_lot.account_id != account.pk:
        raise LedgerError("The source lot belongs to another account.", code="foreign_lot")

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            grant = Grant.objects.create(
                account_id=account.pk,
                kind=kind,
                amount=from_micro(micro),
                expires_at=expires_at,
                source_lot=source_lot,
                idempotency_key=idempotency_key,
                memo=memo[:200],
            )
            write(
                [
                    Entry(
                        TxnKind.GRANT,
                        account.pk,
                        [
                            Leg(
                                platform_account_id(AccountKind.PROMOTION_EXPENSE),
                                "promotion_expense",
                                -micro,
                            ),
                            Leg(buckets[kind].pk, kind, micro, grant_id=grant.pk),
                        ],
                        idempotency_key=f"grant:{idempotency_key}",
                        memo=memo or f"{kind} grant",
                    )
                ]
            )
            grant.remaining_micro = micro
            return grant

    def lookup():
        return Grant.objects.filter(idempotency_key=idempotency_key).first()

    return run_idempotent(lookup, run)


def _end_grant_entry(grant: Grant, buckets, kind, key, memo, actor_id=None) -> Entry:
    # Expiry and voiding are not externally triggered: the grant's state, read under
    # the account's lock, makes them happen once. No key, so a grant revived by a
    # reversal can expire again.
    return Entry(
        kind,
        grant.account_id,
        [
            Leg(buckets[grant.kind].pk, grant.kind, -grant.remaining_micro, grant_id=grant.pk),
            Leg(
                platform_account_id(AccountKind.PROMOTION_EXPENSE),
                "promotion_expense",
                grant.remaining_micro,
            ),
        ],
        idempotency_key=key,
        memo=memo,
        actor_id=actor_id,
    )


def expire_grant(grant: Grant, *, now=None) -> LedgerTransaction | None:
    """The unused part of one due grant leaves the balance (grant → promotion expense).
    None when there is nothing to do (not due, already ended, nothing left)."""
    now = now or timezone.now()
    with transaction.atomic():
        buckets = lock_and_settle([grant.account_id])[grant.account_id]
        fresh = Grant.objects.get(pk=grant.pk)
        if (
            fresh.state != GrantState.ACTIVE
            or fresh.remaining_micro <= 0
            or fresh.expires_at is None
            or fresh.expires_at > now
        ):
            return None
        (txn,) = write([_end_grant_entry(fresh, buckets, TxnKind.EXPIRY, None, "Grant expired")])
        Grant.objects.filter(pk=fresh.pk).update(state=GrantState.EXPIRED, ended_at=now)
    grant.refresh_from_db()
    return txn


def expire_due_grants(*, now=None, limit: int = 5000) -> int:
    """Expire up to `limit` due grants, set-based: one ledger transaction per grant.
    Accounts busy in another transaction are skipped (SKIP LOCKED) and picked up next
    run.

    Two statements per run: lock the bucket rows of the soonest due grants, then the
    engine's bulk expiry writer (`engine.write_grant_expiries`) re-reads those grants
    under the lock and writes every transaction, posting and cached balance (no Python
    per grant: at 1,000,000 grants the per-grant Python of the generic engine path cost
    more than the SQL)."""
    from django.db import connection

    now = now or timezone.now()
    due = "state = %s AND remaining_micro > 0 AND expires_at <= %s"
    due_params = [GrantState.ACTIVE, now]
    if not settle_before_expiry(due, due_params, limit):
        return 0
    # A grant is swept only once every event received before its expiry is settled
    # (R-USE-5): an account the settlement above skipped (busy) keeps its grant until
    # a later run, instead of the sweep waiting for it.
    due += (
        " AND NOT EXISTS (SELECT 1 FROM billing_usageevent c"
        " WHERE c.account_id = billing_grant.account_id AND c.transaction_id IS NULL"
        " AND c.created_at < billing_grant.expires_at)"
    )
    with transaction.atomic(), connection.cursor() as cur:
        # Lock the bucket row of each of the soonest due grants: only the grant's own
        # kind, since a grant of kind K is only ever moved under its owner's K row (every
        # other movement locks all of an account's buckets), and locking writes the row.
        cur.execute(
            "SELECT la.id, d.id FROM billing_ledgeraccount la"  # noqa: S608
            " JOIN (SELECT id, account_id, kind FROM billing_grant"
            f" WHERE {due} ORDER BY expires_at, id LIMIT %s) d"
            " ON la.owner_id = d.account_id AND la.kind = d.kind"
            " ORDER BY la.id FOR UPDATE OF la SKIP LOCKED",
            [*due_params, limit],
        )
        pairs = [(grant_id, bucket_id) for bucket_id, grant_id in cur.fetchall()]
        if not pairs:
            return 0
        return write_grant_expiries(
            pairs, expense_id=platform_account_id(AccountKind.PROMOTION_EXPENSE), now=now
        )


def set_grant_expiry(grant: Grant, expires_at, *, actor=None, reason="") -> tuple[Grant, object]:
    """Move an active grant's expiry (staff extend or shorten its validity, R-TOP-5).

    Takes the lock order (the account, its buckets, then the grant), so the change
    cannot interleave with a charge or the expiry sweep. Only an active grant with
    funds left can change. Staff never change a grant of their own (R-ADM-4), and
    every change is audited with the old value, the new value and the reason
    (R-ADM-5). Returns the grant as changed and its previous expiry.
    """
    from core.workflow import record_audit

    if actor is not None and getattr(actor, "pk", None) is not None:
        owner = Grant.objects.filter(pk=grant.pk).values_list("account__user_id", flat=True).first()
        if owner == actor.pk:
            raise LedgerError(
                "You cannot change the validity of a grant of your own; another staff "
                "member must do it.",
                code="own_case",
            )
    with transaction.atomic():
        lock_and_settle([grant.account_id])
        locked = Grant.objects.select_for_update().select_related("account__user").get(pk=grant.pk)
        if locked.state != GrantState.ACTIVE or locked.remaining_micro <= 0:
            raise LedgerError("Only an active grant with funds left can change.", code="state")
        old = locked.expires_at
        Grant.objects.filter(pk=locked.pk).update(expires_at=expires_at)
        locked.expires_at = expires_at
        record_audit(
            locked,
            action="change_validity",
            actor=actor,
            reason=reason,
            old_expires_at=old.isoformat() if old else "",
            new_expires_at=expires_at.isoformat() if expires_at else "",
        )
    return locked, old


def void_grant(grant: Grant, *, reason: str, actor=None) -> LedgerTransaction | None:
    """Staff take back the unused part of a grant (grant → promotion expense)."""
    from core.workflow import record_audit

    if not (reason or "").strip():
        raise LedgerError("A reason is required to void a grant.", code="reason_required")
    with transaction.atomic():
        buckets = lock_and_settle([grant.account_id])[grant.account_id]
        fresh = Grant.objects.get(pk=grant.pk)
        if fresh.state in (GrantState.EXPIRED, GrantState.VOIDED):
            return (
                LedgerTransaction.objects.filter(kind=TxnKind.VOID, postings__grant=fresh)
                .order_by("-id")
                .first()
            )
        txn = None
        if fresh.remaining_micro > 0:
            (txn,) = write(
                [
                    _end_grant_entry(
                        fresh,
                        buckets,
                        TxnKind.VOID,
                        None,
                        reason[:200],
                        actor_id=getattr(actor, "pk", None),
                    )
                ]
            )
        Grant.objects.filter(pk=fresh.pk).update(state=GrantState.VOIDED, ended_at=timezone.now())
        record_audit(
            fresh,
            action="void",
            actor=actor,
            reason=reason,
            from_state=fresh.state,
            to_state=GrantState.VOIDED,
            amount=str(fresh.remaining),
        )
    grant.refresh_from_db()
    return txn


# ---------------------------------------------------------------- corrections


def reverse_transaction(txn: LedgerTransaction, *, reason: str, actor=None) -> LedgerTransaction:
    """Correct a mistake by posting the exact opposite (R-LED-2: nothing is edited).
    Refused if the money has since moved on (a bucket, lot or grant would go negative)."""
    from core.workflow import record_audit

    if not (reason or "").strip():
        raise LedgerError("A reason is required for a reversal.", code="reason_required")
    if txn.kind == TxnKind.REVERSAL:
        raise LedgerError("A reversal cannot itself be reversed.", code="reversal_of_reversal")
    key = f"reverse:{txn.pk}"

    def run():
        with transaction.atomic():
            if txn.account_id:
                buckets = lock_and_settle([txn.account_id])[txn.account_id]
            postings = list(txn.postings.all())
            legs = [
                Leg(
                    p.ledger_account_id,
                    p.bucket,
                    -p.amount_micro,
                    lot_id=p.lot_id,
                    grant_id=p.grant_id,
                )
                for p in postings
            ]
            if txn.kind not in (TxnKind.EXPIRY, TxnKind.VOID):
                legs = _dead_grants_to_expense(legs, timezone.now())
            if txn.account_id:
                _check_reversible(buckets, legs)
            (rev,) = write(
                [
                    Entry(
                        TxnKind.REVERSAL,
                        txn.account_id,
                        legs,
                        idempotency_key=key,
                        memo=reason[:200],
                        actor_id=getattr(actor, "pk", None),
                        reverses_id=txn.pk,
                    )
                ]
            )
            if txn.kind in (TxnKind.EXPIRY, TxnKind.VOID):
                # the grant's money is back, so the grant is live again
                Grant.objects.filter(pk__in={leg.grant_id for leg in legs if leg.grant_id}).update(
                    state=GrantState.ACTIVE, ended_at=None
                )
            record_audit(txn, action="reverse", actor=actor, reason=reason, reversal=rev.pk)
            return rev

    return run_idempotent(lambda: replayed(key), run)


def _dead_grants_to_expense(legs, now):
    """Money a reversal would return to a grant that has since ended (voided, expired, or
    past its expiry and not yet swept) goes back to promotion expense instead: a dead grant
    is never refilled, so the money is neither lost in it nor counted as available.
    Reversing the expiry or the void itself is what revives a grant, deliberately."""
    returning = {leg.grant_id for leg in legs if leg.grant_id and leg.micro > 0}
    if not returning:
        return legs
    dead = set(
        Grant.objects.filter(pk__in=returning)
        .filter(
            Q(state__in=(GrantState.EXPIRED, GrantState.VOIDED))
            | Q(expires_at__isnull=False, expires_at__lte=now)
        )
        .values_list("pk", flat=True)
    )
    if not dead:
        return legs
    expense = platform_account_id(AccountKind.PROMOTION_EXPENSE)
    return [
        Leg(expense, "promotion_expense", leg.micro)
        if leg.grant_id in dead and leg.micro > 0
        else leg
        for leg in legs
    ]


def _check_reversible(buckets, legs):
    from collections import defaultdict

    bucket = defaultdict(int)
    lots = defaultdict(lambda: [0, 0])
    grants = defaultdict(int)
    for leg in legs:
        bucket[leg.bucket] += leg.micro
        if leg.lot_id and leg.bucket == "cash":
            lots[leg.lot_id][0] += leg.micro
        if leg.lot_id and leg.bucket == "hold":
            lots[leg.lot_id][1] += leg.micro
        if leg.grant_id:
            grants[leg.grant_id] += leg.micro
    for kind, delta in bucket.items():
        if kind in buckets.rows:
            after = buckets.micro(kind) + delta
            if (kind == "arrears" and after > 0) or (kind != "arrears" and after < 0):
                raise LedgerError(
                    "The money has moved on; this cannot be reversed.", code="not_reversible"
                )
    for lot in Lot.objects.filter(pk__in=list(lots)):
        if lot.remaining_micro + lots[lot.pk][0] < 0 or lot.held_micro + lots[lot.pk][1] < 0:
            raise LedgerError(
                "The lot's money has moved on; this cannot be reversed.", code="not_reversible"
            )
    for grant in Grant.objects.filter(pk__in=list(grants)):
        if grant.remaining_micro + grants[grant.pk] < 0:
            raise LedgerError(
                "The grant has been spent; this cannot be reversed.", code="not_reversible"
            )
