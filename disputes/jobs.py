"""Scheduled jobs of disputes (registered with the ops job framework)."""

from django.utils.translation import gettext_lazy as _

from ops.jobs import job


@job(
    "dispute_deadlines",
    schedule=300,
    batch_size=100,
    description=_(
        "Open disputes past their deadline: the disputed amount is refunded to the "
        "rights holder from cash, a shortfall becomes a debt (R-DIS-3, R-DIS-4)."
    ),
)
def dispute_deadlines(now, batch_size):
    """R-DIS-3, R-DIS-4: the deadline refund, once per dispute (row lock, SKIP LOCKED)."""
    from .services.deadline import refund_due_disputes

    return refund_due_disputes(now, batch_size)


@job(
    "dispute_debts",
    schedule=300,
    batch_size=100,
    description=_(
        "Top-ups that paid dispute debt are passed on to the rights holder; debts "
        "unpaid at their due date are escalated (R-DIS-3, R-DIS-5)."
    ),
)
def dispute_debts(now, batch_size):
    """R-DIS-5: collections; R-DIS-3: escalation of overdue debts."""
    from .services.deadline import collect_debt_payments, escalate_overdue_debts

    collected = collect_debt_payments(now, batch_size)
    escalated = escalate_overdue_debts(now, batch_size)
    return max(collected, escalated)


@job(
    "dispute_reminders",
    schedule=3600,
    batch_size=1000,
    description=_("Reminders 7, 3 and 1 days before a dispute's deadline or a debt's due date."),
)
def dispute_reminders(now, batch_size):
    """Reminders, once each (dedupe keys)."""
    from .services.deadline import send_reminders

    return send_reminders(now, batch_size)


@job(
    "settle_dispute_payouts",
    schedule=300,
    batch_size=100,
    description=_(
        "Alipay payouts to rights holders never sent or of unknown outcome are sent "
        "or queried, always with the same out_request_no."
    ),
)
def settle_dispute_payouts(now, batch_size):
    """R-DIS-4: a payout a killed worker never sent goes out once."""
    from .services.payouts import settle_dispute_payouts as settle

    return settle(now, batch_size)
