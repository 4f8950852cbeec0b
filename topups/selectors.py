"""Read paths for top-ups, promotions and grants (no N+1)."""

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from billing import selectors as ledger_selectors
from billing.models import Channel, Grant
from core.models import AuditRecord

from .models import Promotion, TopUp

# The states pages compare against, handed on so that a page of a higher app (console)
# reads this app through this module alone.
from .models import TopUpState as TopUpState


def topups_for(user):
    return (
        TopUp.objects.filter(account__user=user)
        .select_related("account")
        .order_by("-created_at", "-id")
    )


def topup_for_user(user, pk):
    """The user's own top-up or 404: another user's id reveals nothing."""
    return get_object_or_404(topups_for(user), pk=pk)


def promotions_with_counts():
    return Promotion.objects.annotate(
        redemption_count=Count("redemptions", distinct=True),
        voided_count=Count(
            "redemptions", filter=Q(redemptions__voided_at__isnull=False), distinct=True
        ),
        granted_total=Sum("redemptions__amount"),
    )


def balance_summary(account):
    return ledger_selectors.balance_summary(account)


def grants_for(account):
    """Trial and discount grants with their expiry, newest first (R-TOP-5)."""
    return ledger_selectors.grants_for(account)


def grant_history(grant):
    """Validity changes of one grant, newest first (for the admin page, R-TOP-5)."""
    return (
        AuditRecord.objects.filter(
            content_type=ContentType.objects.get_for_model(Grant),
            object_id=str(grant.pk),
        )
        .select_related("actor")
        .order_by("-at", "-id")
    )


def topup_for_users_lot(user, lot_id):
    """The user's top-up that credited a lot; 404 for anyone else's lot."""
    return get_object_or_404(TopUp, lot_id=lot_id, account__user=user)


def payable_now(topup, at=None) -> bool:
    """An unpaid Alipay order that has not expired can still be paid (R-TOP-1)."""
    at = at or timezone.now()
    return (
        topup.channel == Channel.ALIPAY
        and topup.state == TopUpState.CREATED
        and (topup.expires_at is None or topup.expires_at > at)
    )


# ---------------------------------------------------------------- for the console's pages


def unpaid_orders(account, *, limit=5):
    """The account's orders waiting for payment, newest first, one query."""
    orders = TopUp.objects.filter(account_id=account.pk, state=TopUpState.CREATED)
    return list(orders.order_by("-id")[:limit])


def topup_queue(state):
    """Top-ups in `state` (review, approval): (how many, the oldest order), one query."""
    row = TopUp.objects.filter(state=state).aggregate(n=Count("pk"), oldest=Min("created_at"))
    return row["n"], row["oldest"]


def paid_since(start):
    """(how many top-ups were paid since `start`, the money received, a Decimal), one
    query; a top-up whose received amount differed counts what was received."""
    row = TopUp.objects.filter(state=TopUpState.PAID, paid_at__gte=start).aggregate(
        n=Count("pk"), total=Sum(Coalesce("received_amount", "amount"))
    )
    return row["n"], row["total"] or 0


def user_ids_for_trade(number: str) -> list[int]:
    """The users whose top-up has this order number, Alipay trade number or remittance
    reference (exact, each indexed), for the staff's customer search."""
    number = (number or "").strip()
    if not number:
        return []
    # the channel in the trade number's match lets the (channel, trade_no) unique index
    # serve it: one probe per channel, never a scan of every top-up
    rows = TopUp.objects.filter(
        Q(out_trade_no=number)
        | Q(channel__in=Channel.values, trade_no=number)
        | Q(remittance_reference=number)
    )
    found = rows.values_list("account__user_id", flat=True)[:20]
    return list(dict.fromkeys(found))  # one user per top-up; no DISTINCT in SQL
