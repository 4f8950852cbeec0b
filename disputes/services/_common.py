"""Helpers the dispute services share: the deadline clock, notices, the locks."""

import datetime
import zoneinfo

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, ApiKeyState, BalanceAccount, Standing
from accounts.services import refuse_own_case
from billing.micro import from_micro
from core.workflow import apply_transition
from notices.services import send_notice

from ..models import HOLDING_STATES, Dispute

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
DEADLINE_DAYS = 30  # R-DIS-1: evidence; R-DIS-3: the debt's due date
REMINDER_DAYS = (7, 3, 1)


def end_of_day_after(at, days=DEADLINE_DAYS):
    """The end of the day `days` after `at`, in Asia/Shanghai (the agreement's clock)."""
    day = timezone.localtime(at, SHANGHAI).date() + datetime.timedelta(days=days)
    return datetime.datetime.combine(day, datetime.time.max, tzinfo=SHANGHAI)


def local_text(at):
    return timezone.localtime(at, SHANGHAI).strftime("%Y-%m-%d %H:%M")


def money_text(micro):
    return f"{from_micro(micro).amount:.2f}"


def page_url(dispute):
    return f"{getattr(settings, 'PORTAL_BASE_URL', '')}" + reverse(
        "disputes:detail", args=[dispute.pk]
    )


def tell(dispute, kind, *, key_suffix="", **context):
    """The user's notice of one event of this dispute (once: dedupe key per event)."""
    return send_notice(
        user=dispute.account.user,
        kind=kind,
        context={
            "dispute": dispute.pk,
            "amount": money_text(dispute.disputed_micro),
            "deadline": local_text(dispute.deadline_at),
            "url": page_url(dispute),
            **context,
        },
        dedupe_key=f"{kind}:{dispute.pk}{key_suffix}",
    )


def lock_dispute(dispute):
    return (
        Dispute.objects.select_for_update(of=("self",))
        .select_related("account__user")
        .get(pk=dispute.pk)
    )


def other_holders(dispute):
    return Dispute.objects.filter(account_id=dispute.account_id, state__in=HOLDING_STATES).exclude(
        pk=dispute.pk
    )


def release(dispute, *, actor, reason):
    """A dispute stopped holding (cleared or settled): unlock its keys that no other open
    dispute still holds, and the account if it held it, no other dispute does and the
    standing is still `locked` (a freeze, a suspension or a staff lock stay as they are).
    Returns (account unlocked?, keys unlocked)."""
    others = list(other_holders(dispute).values_list("holds_account", "locked_key_ids"))
    still_held = {k for _, ids in others for k in ids}
    unlocked_keys = []
    for key in ApiKey.objects.filter(
        pk__in=dispute.locked_key_ids, state=ApiKeyState.LOCKED
    ).order_by("pk"):
        if key.pk in still_held:
            continue
        apply_transition(key, "unlock", actor=actor, reason=reason, check_permission=False)
        unlocked_keys.append(key.pk)
    account = BalanceAccount.objects.get(pk=dispute.account_id)
    unlocked = False
    if dispute.holds_account and not others and account.standing == Standing.LOCKED:
        apply_transition(account, "unlock", actor=actor, reason=reason, check_permission=False)
        unlocked = True
    return unlocked, unlocked_keys


# --- the holds accounts asks about (accounts.models.ACCOUNT_HOLDS / KEY_HOLDS) ------------


def account_hold(account):
    return Dispute.objects.filter(account_id=account.pk, state__in=HOLDING_STATES).exists()


def key_hold(key):
    return any(
        key.pk in ids
        for ids in Dispute.objects.filter(
            account_id=key.account_id, state__in=HOLDING_STATES
        ).values_list("locked_key_ids", flat=True)
    )


def refuse_own_dispute(dispute, actor, what="decide a dispute"):
    """R-ADM-4: staff never decide, settle or pay a dispute of their own account."""
    owner = Dispute.objects.filter(pk=dispute.pk).values_list("account__user_id", flat=True)
    refuse_own_case(owner.first(), actor, what)
