"""Refund holds and their payout (R-REF-3 … R-REF-6): cash of a lot set aside while a
refund is reviewed, released on rejection or cancellation, paid out to refunds payable
on approval, and refunds payable paid to the channel once the money has left.

Each function is one database transaction, idempotent on its key (R-LED-5), and takes
the ledger's lock order through `settlement.lock_and_settle` (billing/README.md, "Lock order").
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..chart import platform_account_id
from ..models import AccountKind, LedgerTransaction, Lot, TxnKind
from .engine import (
    Entry,
    LedgerError,
    Leg,
    replayed,
    run_idempotent,
    write,
)
from .engine import positive_micro as _positive_micro
from .payables import payable_to_channel
from .settlement import lock_and_settle

# ---------------------------------------------------------------- refund holds


def _lot_move(lot, amount, *, kind, key, legs_for, check, memo):
    micro = _positive_micro(amount, whole_fen=True)
    ikey = f"{kind}:{key}"

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([lot.account_id])[lot.account_id]
            fresh = Lot.objects.get(pk=lot.pk)
            check(fresh, micro)
            (txn,) = write(
                [
                    Entry(
                        kind,
                        lot.account_id,
                        legs_for(buckets, fresh, micro),
                        idempotency_key=ikey,
                        memo=memo,
                    )
                ]
            )
        lot.refresh_from_db()
        return txn

    return run_idempotent(lambda: replayed(ikey), run)


def _needs_cash(lot, micro):
    if lot.remaining_micro < micro:
        raise LedgerError(
            "The lot's unconsumed cash is less than the amount.", code="insufficient_lot"
        )


def _needs_hold(lot, micro):
    if lot.held_micro < micro:
        raise LedgerError("Less than this amount is on hold for the lot.", code="insufficient_hold")


def release_refund_hold(lot: Lot, amount, *, idempotency_key: str) -> LedgerTransaction:
    """A refund was refused or withdrawn: the held cash returns to the lot."""
    return _lot_move(
        lot,
        amount,
        kind=TxnKind.RELEASE,
        key=idempotency_key,
        check=_needs_hold,
        legs_for=lambda b, lot, m: [
            Leg(b["hold"].pk, "hold", -m, lot_id=lot.pk),
            Leg(b["cash"].pk, "cash", m, lot_id=lot.pk),
        ],
        memo="Refund hold released",
    )


# ---------------------------------------------------------------- refunds (R-REF-3 … R-REF-6)
# The refunds app moves a whole request at once: every lot of it in ONE ledger
# transaction, arrears settled from the refund first. Each function is one database
# transaction, idempotent on its key, and takes the lock order through lock_and_settle
# (balance account row, bucket rows) before it reads the lots.


def _locked_lots(account_id, lot_ids):
    lots = {lot.pk: lot for lot in Lot.objects.filter(pk__in=lot_ids, account_id=account_id)}
    if len(lots) != len(set(lot_ids)):
        raise LedgerError("A lot belongs to another account.", code="foreign_lot")
    return lots


FEN = 10_000  # micro-units in one fen


def hold_lots_for_refund(account, amounts: dict, *, idempotency_key: str) -> dict | None:
    """Set a refund's cash aside: {lot id: micro} leaves each lot's cash in ONE ledger
    transaction (R-REF-3). Arrears are settled from it first (cash → arrears receivable),
    lot by lot in the order given; the rest, down to whole fen, goes to the refund hold
    (cash → hold); a sub-fen rest stays in the lot's cash.

    Returns {"txn": the transaction, "held": {lot id: micro held}, "arrears": {lot id:
    micro that settled arrears}}; a replay returns the first result's figures from its
    postings. Refused if any lot is closed or has less unconsumed cash than asked.
    """
    key = f"refund-hold:{idempotency_key}"
    micros = {int(k): int(v) for k, v in amounts.items()}
    if not micros or any(m <= 0 or m % 10_000 for m in micros.values()):
        raise LedgerError("Each amount must be positive whole fen.", code="invalid_amount")

    def summary(txn):
        held, arrears = {}, {}
        for lot_id, bucket, micro in txn.postings.values_list("lot_id", "bucket", "amount_micro"):
            if bucket == AccountKind.HOLD:
                held[lot_id] = held.get(lot_id, 0) + micro
            elif bucket == AccountKind.ARREARS:
                arrears[lot_id] = arrears.get(lot_id, 0) + micro
        return {"txn": txn, "held": held, "arrears": arrears}

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            lots = _locked_lots(account.pk, list(micros))
            owed = buckets.arrears_micro
            legs, held, arrears = [], {}, {}
            for lot_id, micro in micros.items():
                lot = lots[lot_id]
                if lot.closed_at is not None:
                    raise LedgerError("This lot is closed: it was refunded once.", code="closed")
                _needs_cash(lot, micro)
                settles = min(owed, micro)
                owed -= settles
                # the hold is whole fen (refunds are paid in fen); a sub-fen rest left by
                # settling arrears of fractions of a fen stays in the lot's cash
                hold = (micro - settles) - (micro - settles) % FEN
                if settles + hold:
                    legs.append(Leg(buckets["cash"].pk, "cash", -(settles + hold), lot_id=lot_id))
                if settles:
                    legs.append(Leg(buckets["arrears"].pk, "arrears", settles, lot_id=lot_id))
                    arrears[lot_id] = settles
                if hold:
                    legs.append(Leg(buckets["hold"].pk, "hold", hold, lot_id=lot_id))
                    held[lot_id] = hold
            (txn,) = write(
                [Entry(TxnKind.HOLD, account.pk, legs, idempotency_key=key, memo="Refund hold")]
            )
            return {"txn": txn, "held": held, "arrears": arrears}

    found = replayed(key)
    if found is not None:
        return summary(found)
    try:
        return run()
    except IntegrityError:
        found = replayed(key)
        if found is None:
            raise
        return summary(found)


def pay_out_refund_holds(
    account, payouts: dict, *, idempotency_key: str, actor=None, recover: dict | None = None
) -> LedgerTransaction | None:
    """An approved refund leaves the balance, in ONE ledger transaction (R-REF-4).

    `payouts` is {lot id: (pay micro, release micro)}: for each lot, `pay` moves from
    the refund hold to refunds payable and `release` (a part no longer refundable, e.g.
    discount used during the review) returns from the hold to the lot's cash. Arrears
    the user ran up meanwhile are settled from the hold first (released part first).
    Refunds payable gets whole fen; a sub-fen rest returns to the lot's cash.
    Every lot is closed for good (refunded once, §8.2). Returns the transaction; None
    when nothing moves. Refused if a lot holds less than pay + release or is closed.

    `recover` is {lot id: (from cash, from hold)}: the used discount deducted from the
    refund leaves the balance in this same transaction (R-REF-7, the promotion expense
    is recovered), from the lot's unheld cash and from its hold (exact micro-units).
    """
    key = f"refund-payout:{idempotency_key}"
    recover = {int(k): (int(c), int(h)) for k, (c, h) in (recover or {}).items()}
    for pay, release in payouts.values():
        # what is paid is whole fen; a released rest may hold the sub-fen part of a fen
        # whose other part was recovered (R-REF-7)
        if pay < 0 or release < 0 or pay % 10_000:
            raise LedgerError("Refunds move whole fen only.", code="invalid_amount")
    if any(c < 0 or h < 0 for c, h in recover.values()) or set(recover) - set(payouts):
        raise LedgerError("A recovery must be positive, on a lot paid out.", code="invalid_amount")

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            lots = _locked_lots(account.pk, list(payouts))
            owed = buckets.arrears_micro
            legs, payable, recovered = [], 0, 0
            for lot_id, (pay, release) in payouts.items():
                lot = lots[lot_id]
                if lot.closed_at is not None:
                    raise LedgerError("This lot is closed: it was refunded once.", code="closed")
                from_cash, from_hold = recover.get(lot_id, (0, 0))
                _needs_hold(lot, pay + release + from_hold)
                _needs_cash(lot, from_cash)
                from_release = min(owed, release)
                owed -= from_release
                from_pay = min(owed, pay)
                owed -= from_pay
                # refunds payable gets whole fen; a sub-fen rest (after settling arrears of
                # fractions of a fen) returns to the lot's cash with the released part
                paid = (pay - from_pay) - (pay - from_pay) % FEN
                cash_back = (release - from_release) + (pay - from_pay - paid)
                if pay + release + from_hold:
                    legs.append(
                        Leg(buckets["hold"].pk, "hold", -(pay + release + from_hold), lot_id=lot_id)
                    )
                if cash_back - from_cash:
                    legs.append(
                        Leg(buckets["cash"].pk, "cash", cash_back - from_cash, lot_id=lot_id)
                    )
                recovered += from_cash + from_hold
                if from_release + from_pay:
                    legs.append(
                        Leg(
                            buckets["arrears"].pk, "arrears", from_release + from_pay, lot_id=lot_id
                        )
                    )
                payable += paid
            if recovered:
                legs.append(
                    Leg(
                        platform_account_id(AccountKind.PROMOTION_EXPENSE),
                        "promotion_expense",
                        recovered,
                    )
                )
            if payable:
                legs.append(
                    Leg(
                        platform_account_id(AccountKind.REFUNDS_PAYABLE), "refunds_payable", payable
                    )
                )
            txn = None
            if legs:
                (txn,) = write(
                    [
                        Entry(
                            TxnKind.REFUND,
                            account.pk,
                            legs,
                            idempotency_key=key,
                            memo="Refund approved",
                            actor_id=getattr(actor, "pk", None),
                        )
                    ]
                )
            Lot.objects.filter(pk__in=list(payouts), closed_at__isnull=True).update(
                closed_at=timezone.now()
            )
            return txn

    return run_idempotent(lambda: replayed(key), run)


def refund_paid_to_channel(
    account, amount, *, channel: str, idempotency_key: str, memo: str = "", actor=None
) -> LedgerTransaction:
    """The refund's money actually left: refunds payable → payment clearing[channel]
    (an Alipay refund the channel confirmed, or finance's bank transfer; R-REF-5, R-REF-6).
    Touches no user bucket; takes the account's locks anyway so one refund's movements
    on an account are serialised with the others."""
    return payable_to_channel(
        account,
        _positive_micro(amount, whole_fen=True),
        payable=AccountKind.REFUNDS_PAYABLE,
        kind=TxnKind.REFUND,
        channel=channel,
        key=f"refund-paid:{idempotency_key}",
        memo=memo or f"Refund paid via {channel}",
        actor=actor,
    )
