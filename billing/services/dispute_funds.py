"""The ledger moves of third-party top-up disputes (R-DIS-3, R-DIS-5).

Books. A rights holder whose money reached a user's balance without consent is paid
back through the platform:

- `refund_dispute` (the deadline): cash[lot] −x (cash only); rights-holder payable +x;
  for a shortfall s: dispute debt −s; claims not yet collected +s.
- `credit_lot` (billing.services.ledger), after arrears: dispute debt +d; claims −d;
  rights-holder payable +d.
- `end_dispute_debt` (waived / repaid directly): dispute debt +s; claims −s.
- `pay_rights_holder`: rights-holder payable −x; clearing[channel] +x (money left).

`rights_holder_payable` is what the platform holds for rights holders and still has
to send; `dispute_claims` is what they are owed that no top-up has collected yet; the
user's `dispute_debt` bucket (≤ 0) is that same amount owed by the user. Trial and
discount money are never touched.

Each function is one database transaction, idempotent on its key (R-LED-5, R-DIS-4),
and takes the ledger's lock order through `settlement.lock_and_settle`.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.dispatch import Signal

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
from .payables import payable_to_channel
from .settlement import lock_and_settle

FEN = 10_000  # micro-units in one fen

# A top-up paid dispute debt (credit_lot): sent once its transaction commits, with the
# account id. The disputes app passes the payment on to the rights holder then (issue
# 24), not at its next `dispute_debts` job 5 minutes later (which stays as the backstop).
debt_paid = Signal()


def announce_debt_paid(account_id: int) -> None:
    """Call inside the top-up's transaction: `debt_paid` is sent after it commits."""
    transaction.on_commit(
        lambda: debt_paid.send_robust(sender=None, account_id=account_id), robust=True
    )


def _whole_fen(micro):
    if micro <= 0 or micro % FEN:
        raise LedgerError("The amount must be positive whole fen.", code="invalid_amount")
    return micro


def refund_dispute(
    account, disputed_micro: int, *, prefer_lot_ids=(), idempotency_key: str, actor=None
) -> dict:
    """At a dispute's deadline, take the disputed amount from the balance's CASH (lots,
    the disputed ones first, then oldest first; trial and discount grants never) to the
    rights-holder payable; what cash cannot cover (in whole fen) becomes the user's
    dispute debt. ONE ledger transaction.

    Returns {"txn", "paid": micro, "debt": micro, "lots": {lot id: micro}}; a replay
    returns the first result, from its postings.
    """
    _whole_fen(disputed_micro)
    key = f"dispute-refund:{idempotency_key}"

    def summary(txn):
        paid = debt = 0
        lots = {}
        for lot_id, bucket, micro in txn.postings.values_list("lot_id", "bucket", "amount_micro"):
            if bucket == AccountKind.CASH:
                lots[lot_id] = lots.get(lot_id, 0) - micro
            elif bucket == AccountKind.RIGHTS_HOLDER_PAYABLE:
                paid += micro
            elif bucket == AccountKind.DISPUTE_DEBT:
                debt -= micro
        return {"txn": txn, "paid": paid, "debt": debt, "lots": lots}

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            preferred = [int(i) for i in prefer_lot_ids]
            lots = list(
                Lot.objects.filter(account_id=account.pk, remaining_micro__gt=0).order_by(
                    "created_at", "id"
                )
            )
            lots.sort(key=lambda lot: 0 if lot.pk in preferred else 1)
            cash = sum(lot.remaining_micro for lot in lots)
            paid = min(cash, disputed_micro)
            paid -= paid % FEN  # paid out in whole fen; a sub-fen rest stays in the lot
            debt = disputed_micro - paid
            legs, taken, need = [], {}, paid
            for lot in lots:
                if not need:
                    break
                take = min(lot.remaining_micro, need)
                need -= take
                taken[lot.pk] = take
                legs.append(Leg(buckets["cash"].pk, "cash", -take, lot_id=lot.pk))
            if paid:
                legs.append(
                    Leg(
                        platform_account_id(AccountKind.RIGHTS_HOLDER_PAYABLE),
                        "rights_holder_payable",
                        paid,
                    )
                )
            if debt:
                legs += [
                    Leg(buckets["dispute_debt"].pk, "dispute_debt", -debt),
                    Leg(platform_account_id(AccountKind.DISPUTE_CLAIMS), "dispute_claims", debt),
                ]
            (txn,) = write(
                [
                    Entry(
                        TxnKind.DISPUTE_REFUND,
                        account.pk,
                        legs,
                        idempotency_key=key,
                        memo="Dispute deadline: refund to the rights holder",
                        actor_id=getattr(actor, "pk", None),
                    )
                ]
            )
            return {"txn": txn, "paid": paid, "debt": debt, "lots": taken}

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


def end_dispute_debt(
    account, micro: int, *, idempotency_key: str, memo: str = "", actor=None
) -> LedgerTransaction:
    """A dispute debt ends without a top-up (the rights holder waived it, or the user
    repaid them directly): dispute debt +s; claims −s. Refused above the debt left."""
    _whole_fen(micro)
    key = f"debt-ended:{idempotency_key}"

    def run():
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            if -buckets.micro("dispute_debt") < micro:
                raise LedgerError("The debt left is less than this amount.", code="no_such_debt")
            (txn,) = write(
                [
                    Entry(
                        TxnKind.DEBT_ENDED,
                        account.pk,
                        [
                            Leg(buckets["dispute_debt"].pk, "dispute_debt", micro),
                            Leg(
                                platform_account_id(AccountKind.DISPUTE_CLAIMS),
                                "dispute_claims",
                                -micro,
                            ),
                        ],
                        idempotency_key=key,
                        memo=(memo or "Dispute debt ended")[:200],
                        actor_id=getattr(actor, "pk", None),
                    )
                ]
            )
            return txn

    return run_idempotent(lambda: replayed(key), run)


def pay_rights_holder(
    account, micro: int, *, channel: str, idempotency_key: str, memo: str = "", actor=None
) -> LedgerTransaction:
    """The rights holder's money left (an Alipay refund the channel confirmed, or
    finance's bank transfer): rights-holder payable → clearing[channel]. Touches no user
    bucket; takes the account's locks so one dispute's moves are serialised."""
    _whole_fen(micro)
    return payable_to_channel(
        account,
        micro,
        payable=AccountKind.RIGHTS_HOLDER_PAYABLE,
        kind=TxnKind.DISPUTE_PAYOUT,
        channel=channel,
        key=f"dispute-paid:{idempotency_key}",
        memo=memo or f"Paid to the rights holder via {channel}",
        actor=actor,
    )


def debt_micro(account_id) -> int:
    """What the user owes rights holders now (≥ 0), from the cached bucket."""
    from ..models import LedgerAccount

    row = (
        LedgerAccount.objects.filter(owner_id=account_id, kind=AccountKind.DISPUTE_DEBT)
        .values_list("balance_micro", flat=True)
        .first()
    )
    return -(row or 0)


def debt_collections(account_ids, *, after_id=0, limit=500):
    """Top-ups that paid dispute debt: [(txn id, account id, micro)] in id order."""
    from ..models import Posting

    return list(
        Posting.objects.filter(
            bucket=AccountKind.DISPUTE_DEBT,
            amount_micro__gt=0,
            transaction__kind=TxnKind.TOP_UP,
            transaction__account_id__in=list(account_ids),
            transaction_id__gt=after_id,
        )
        .order_by("transaction_id")
        .values_list("transaction_id", "transaction__account_id", "amount_micro")[:limit]
    )
