"""The dispute clock (R-DIS-3 … R-DIS-5): the deadline refund, debt collections, the
escalation of an overdue debt, and the reminders 7, 3 and 1 days before each deadline.

Idempotent and safe to run twice at once (R-DIS-4): each dispute moves in its own
transaction under its row lock (SKIP LOCKED when picking work on PostgreSQL), re-reads
its state under that lock, and its ledger move is keyed on the dispute; a worker killed
halfway rolls its transaction back and the next run does the work once.
"""

from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from accounts.models import Standing
from accounts.selectors import lock_standings
from billing.services import dispute_funds
from core.workflow import apply_transition
from notices.models import Notice

from ..models import DEBT_STATES, DebtCollection, Dispute, DisputeState
from ._common import REMINDER_DAYS, end_of_day_after, local_text, money_text, release, tell
from .payouts import create_payouts, send_payout

logger = logging.getLogger(__name__)


def _pick(qs, limit):
    with transaction.atomic():
        qs = qs.select_for_update(skip_locked=True, of=("self",))
        return list(qs.values_list("pk", flat=True)[:limit])


def refund_at_deadline(dispute, *, now=None):
    """One dispute past its deadline without accepted evidence (R-DIS-3): the disputed
    amount from the balance's cash to the rights-holder payable, the shortfall a debt due
    30 days after the deadline (end of day, Asia/Shanghai), payouts through the disputed
    trades' channels queued, the user told; with no debt the dispute is settled and the
    account unlocked. Returns the dispute, or None when there is nothing to do (not open,
    not due: cleared one day before the deadline, already refunded by another worker)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Dispute.objects.select_for_update(of=("self",))
            .select_related("account__user")
            .get(pk=dispute.pk)
        )
        if locked.state != DisputeState.OPEN or locked.deadline_at >= now:
            return None
        if locked.account.standing == Standing.FROZEN:
            # an authority's freeze: no money leaves the balance; refunded once it lifts
            return None
        lines = list(locked.topups.select_related("topup").order_by("id"))
        result = dispute_funds.refund_dispute(
            locked.account,
            locked.disputed_micro,
            prefer_lot_ids=[line.lot_id for line in lines],
            idempotency_key=str(locked.pk),
        )
        paid, debt = result["paid"], result["debt"]
        due = end_of_day_after(locked.deadline_at) if debt else None
        locked = apply_transition(
            locked,
            "refund_at_deadline",
            actor=None,
            reason="deadline passed without accepted evidence",
            refunded_micro=paid,
            debt_micro=debt,
            debt_due_at=due,
            txn_id=result["txn"].pk,
        )
        if paid:
            create_payouts(locked, lines, paid, source="deadline")
        if locked.state == DisputeState.SETTLED:
            release(locked, actor=None, reason=f"dispute #{locked.pk} refunded, nothing owed")
        tell(
            locked,
            "dispute_refunded",
            refunded=money_text(paid),
            debt=money_text(debt),
            due=local_text(due) if due else "",
        )
    dispute.refresh_from_db()
    return locked


def refund_due_disputes(now=None, limit=100) -> int:
    """The job's batch: open disputes past their deadline, each in its own transaction;
    then their Alipay payouts are sent (after the commit; a payout a killed worker never
    sent is picked up by settle_dispute_payouts with the same out_request_no)."""
    now = now or timezone.now()
    ids = _pick(
        Dispute.objects.filter(state=DisputeState.OPEN, deadline_at__lt=now).order_by(
            "deadline_at", "id"
        ),
        limit,
    )
    done = 0
    for pk in ids:
        try:
            moved = refund_at_deadline(Dispute(pk=pk), now=now)
        except Exception as exc:  # noqa: BLE001 - one bad case must not stop the batch
            logger.exception("dispute %s: deadline refund failed", pk)
            from ops.services import raise_alert

            raise_alert(
                "dispute_deadline_failed",
                f"Dispute #{pk}: the deadline refund failed ({type(exc).__name__})",
                {"dispute": pk},
                key=f"dispute-deadline:{pk}",
            )
            continue
        if moved is None:
            continue
        done += 1
        for payout in moved.payouts.filter(state="sending").values_list("pk", flat=True):
            try:
                send_payout(payout)
            except Exception:  # noqa: BLE001 - the settle job tries again
                logger.exception("dispute payout %s not sent", payout)
    return done


# --- debts ----------------------------------------------------------------------------------


def collect_account(account_id):
    """Pass on what top-ups paid of this account's dispute debts (credit_lot pays them
    after arrears): each top-up's part is recorded once per dispute, oldest due debt
    first, a payout queued for it; a debt paid in full is settled and the account
    unlocked when nothing else holds it. Returns the number of collections recorded."""
    made = 0
    with transaction.atomic():
        debts = list(
            Dispute.objects.select_for_update(of=("self",))
            .select_related("account__user")
            .filter(account_id=account_id, state__in=DEBT_STATES)
            .order_by("debt_due_at", "id")
        )
        if not debts:
            return 0
        # the account row next (lock order: the case, then the account): a top-up still
        # paying the debt commits before this reads the postings, so none is skipped
        lock_standings([account_id])
        after = (
            DebtCollection.objects.filter(dispute__account_id=account_id).aggregate(
                m=Max("txn_id")
            )["m"]
            or 0
        )
        for txn_id, _account, micro in dispute_funds.debt_collections([account_id], after_id=after):
            for dispute in debts:
                if not micro:
                    break
                take = min(micro, dispute.debt_left_micro)
                if take <= 0:
                    continue
                micro -= take
                DebtCollection.objects.create(dispute=dispute, txn_id=txn_id, amount_micro=take)
                Dispute.objects.filter(pk=dispute.pk).update(
                    debt_paid_micro=F("debt_paid_micro") + take
                )
                dispute.debt_paid_micro += take
                lines = list(dispute.topups.select_related("topup").order_by("id"))
                create_payouts(dispute, lines, take, source=f"c{txn_id}")
                made += 1
            if micro:
                logger.error(
                    "account %s: %s micro of debt paid beyond its disputes", account_id, micro
                )
        for dispute in debts:
            if dispute.debt_left_micro == 0:
                settled = apply_transition(
                    dispute, "debt_paid", actor=None, reason="debt paid by top-ups"
                )
                release(settled, actor=None, reason=f"dispute #{settled.pk}: debt paid")
                tell(settled, "dispute_settled", how="paid")
    return made


def pass_on_debt_paid(sender=None, *, account_id, **kwargs) -> int:
    """billing's `debt_paid` receiver (issue 24): a top-up that paid dispute debt has
    committed; its payment is passed on to the rights holder now. A failure here is
    logged and left to the `dispute_debts` job, which collects the same way."""
    try:
        return collect_account(account_id)
    except Exception:
        logger.exception(
            "account %s: passing on a debt payment failed; the job retries", account_id
        )
        return 0


def collect_debt_payments(now=None, limit=100) -> int:
    ids = list(
        Dispute.objects.filter(state__in=DEBT_STATES)
        .order_by("account_id")
        .values_list("account_id", flat=True)
        .distinct()[:limit]
    )
    return sum(collect_account(account_id) for account_id in ids)


def escalate_overdue_debts(now=None, limit=100) -> int:
    """Debts unpaid at their due date go to the escalation queue (R-DIS-3): the user is
    told and staff get an alert."""
    from ops.services import raise_alert

    now = now or timezone.now()
    ids = _pick(
        Dispute.objects.filter(state=DisputeState.IN_DEBT, debt_due_at__lt=now).order_by(
            "debt_due_at", "id"
        ),
        limit,
    )
    for pk in ids:
        collect_account(Dispute.objects.get(pk=pk).account_id)  # a late top-up counts first
        with transaction.atomic():
            locked = Dispute.objects.select_for_update(of=("self",)).get(pk=pk)
            if locked.state != DisputeState.IN_DEBT or locked.debt_due_at >= now:
                continue
            locked = apply_transition(locked, "escalate", actor=None, reason="debt overdue")
            tell(
                locked,
                "dispute_debt_escalated",
                debt=money_text(locked.debt_left_micro),
                due=local_text(locked.debt_due_at),
            )
            raise_alert(
                "dispute_debt_overdue",
                f"Dispute #{locked.pk}: debt of {money_text(locked.debt_left_micro)} CNY overdue",
                {"dispute": locked.pk},
                key=f"dispute-debt:{locked.pk}",
            )
    return len(ids)


def send_reminders(now=None, limit=1000) -> int:
    """Reminders 7, 3 and 1 days before a dispute's deadline and a debt's due date, once
    each (dedupe key per dispute and threshold); only the nearest threshold is sent, so
    a job that was down does not send three at once."""
    now = now or timezone.now()
    horizon = now + datetime.timedelta(days=max(REMINDER_DAYS))
    sent = 0
    rows = list(
        Dispute.objects.select_related("account__user")
        .filter(state=DisputeState.OPEN, deadline_at__gt=now, deadline_at__lte=horizon)
        .order_by("deadline_at")[:limit]
    )
    debts = list(
        Dispute.objects.select_related("account__user")
        .filter(state=DisputeState.IN_DEBT, debt_due_at__gt=now, debt_due_at__lte=horizon)
        .order_by("debt_due_at")[:limit]
    )
    for dispute, end, kind in [(d, d.deadline_at, "dispute_deadline_reminder") for d in rows] + [
        (d, d.debt_due_at, "dispute_debt_reminder") for d in debts
    ]:
        left = end - now
        days = min(n for n in REMINDER_DAYS if left <= datetime.timedelta(days=n))
        suffix = f":{end:%Y%m%d}:{days}"
        if Notice.objects.filter(dedupe_key=f"{kind}:{dispute.pk}{suffix}").exists():
            continue
        with transaction.atomic():
            tell(
                dispute,
                kind,
                key_suffix=suffix,
                days=days,
                debt=money_text(dispute.debt_left_micro),
                due=local_text(end),
            )
        sent += 1
    return sent
