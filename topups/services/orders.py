"""Top-up orders (R-TOP-1, R-TOP-2): start, payment window, cancel, credit a paid order,
expire unpaid ones.

Every channel's payment ends in credit_paid_topup: one transaction records the
payment, credits the lot, applies the best promotion and tells the user.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import BalanceAccount
from accounts.selectors import agreement_in_force, current_acceptance
from accounts.services import accept_agreement
from billing.models import Channel
from billing.services import ledger
from core.money import parse_amount
from core.workflow import apply_bulk_transition, apply_transition, record_audit
from notices.services import send_notice

from ..models import TopUp, TopUpState, new_remittance_reference
from .preconditions import FINANCE_PERM, Problem, TopUpRefused, check_preconditions
from .promotions import apply_best_promotion


def start_topup(
    user, amount, *, channel, currency="CNY", accept_version=None, ip="", at=None, actor=None
):
    """Create a top-up order awaiting payment, or raise TopUpRefused listing every problem.

    `accept_version` (the agreement version's id shown on the page) records the
    user's acceptance first when it is the version in force (R-ACC-7); the
    acceptance in force is stored on the top-up.
    """
    at = at or timezone.now()
    if channel not in (Channel.ALIPAY, Channel.BANK, Channel.OTHER):
        raise TopUpRefused([Problem("channel", "Choose Alipay or bank transfer.")])
    if channel == Channel.OTHER and not (actor and actor.has_perm(FINANCE_PERM)):
        raise PermissionDenied(_("Only finance records manual top-ups."))
    with transaction.atomic():
        account = BalanceAccount.objects.select_for_update().get(user=user)
        user.balance_account = account  # standing read under the lock
        if accept_version:
            version = agreement_in_force(at)
            wanted = str(getattr(accept_version, "pk", accept_version))
            if (
                version is not None
                and str(version.pk) == wanted
                and current_acceptance(user, at) is None
            ):
                accept_agreement(user, version, ip=ip or "")
        problems = check_preconditions(user, amount=amount, currency=currency, at=at)
        if problems:
            raise TopUpRefused(problems)
        topup = TopUp.objects.create(
            account=account,
            channel=channel,
            amount=parse_amount(amount, currency=currency),
            acceptance=current_acceptance(user, at),
            expires_at=at + payment_window(channel),
            remittance_reference=new_remittance_reference() if channel != Channel.ALIPAY else None,
            created_by=actor or user,
        )
        record_audit(topup, action="create", actor=actor or user, to_state=topup.state)
    return topup


def payment_window(channel):
    """How long an order waits for its money: minutes for Alipay, days for a bank wire."""
    if channel == Channel.ALIPAY:
        return timedelta(minutes=settings.TOPUP_EXPIRE_MINUTES)
    return timedelta(hours=settings.TOPUP_BANK_EXPIRE_HOURS)


def credit_paid_topup(topup, *, transition, actor, reason, amount, **transition_kwargs):
    """Run the paying transition, credit the lot, apply the best promotion, tell the user.

    Called by the Alipay notification and by finance's remittance and review
    services. The caller holds the top-up's row lock inside its transaction; the
    ledger's idempotency key (one per top-up order) is the second guard against
    a double credit.
    """
    # Lock order: top-up, then its balance account, then ledger rows, then a promotion.
    # The account lock also serialises one account's top-ups for per-user promotion limits.
    BalanceAccount.objects.select_for_update().filter(pk=topup.account_id).first()
    topup = apply_transition(topup, transition, actor=actor, reason=reason, **transition_kwargs)
    lot = ledger.credit_lot(
        topup.account,
        amount,
        channel=topup.channel,
        idempotency_key=f"topup:{topup.out_trade_no}",
        payer_name=topup.payer_name,
        payer_account=topup.payer_account,
        third_party=topup.third_party,
        memo=f"Top-up {topup.out_trade_no}",
    )
    topup.lot = lot
    topup.save(update_fields=["lot"])
    apply_best_promotion(topup, lot)
    send_notice(
        user=topup.account.user,
        kind="topup_credited",
        context={
            "topup": topup.pk,
            "out_trade_no": topup.out_trade_no,
            "amount": amount,
            "channel": topup.get_channel_display(),
        },
        dedupe_key=f"topup-credited:{topup.pk}",
    )
    return topup


def cancel_topup(topup, *, actor, reason=""):
    """The user (or staff) cancels an order still awaiting payment."""
    return apply_transition(topup, "cancel", actor=actor, reason=reason or "cancelled by user")


def cancel_topup_transition(topup, *, actor, reason="", **form_data):
    """The admin's "Cancel order" button (TopUp's transition map, in remittances)."""
    return cancel_topup(topup, actor=actor, reason=reason)


def expire_unpaid_topups(now=None, limit=1000):
    """Expire up to `limit` orders still unpaid at `now`; returns how many.

    Set-based through core.workflow.apply_bulk_transition (one UPDATE, one audit
    row each). Rows another worker holds (e.g. a notification being processed)
    are skipped, not waited for, and are looked at again on the next run.
    """
    now = now or timezone.now()
    due = TopUp.objects.filter(state=TopUpState.CREATED, expires_at__lte=now).order_by(
        "expires_at", "id"
    )
    moved = apply_bulk_transition(
        TopUp,
        due.values_list("pk", flat=True)[:limit],
        "expire",
        reason="unpaid after the payment window",
        values={"closed_at": now},
    )
    return len(moved)
