"""Promotions (R-TOP-4): the one best benefit per paid top-up, quantity that holds under
concurrency, ending a promotion and voiding its unused benefits; Promotion's transition map.
"""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import BalanceAccount
from accounts.selectors import approved_verification
from billing.micro import from_micro
from billing.services import ledger
from billing.services.settlement import lock_and_settle
from core.workflow import WorkflowError, apply_transition, record_setting_change, transition_map
from notices.services import send_notice

from ..models import Audience, Promotion, PromotionRedemption, PromotionState, TopUp


def _audience_of(user):
    """The promotion audience a user belongs to: their verification's kind, or None."""
    verification = approved_verification(user)
    return getattr(verification, "kind", None) if verification else None


def promotion_candidates(topup, *, at=None, amount=None):
    """Promotions this paid top-up qualifies for, with their benefit, best first.

    `amount` is what the promotion counts: the part of the top-up that became spendable
    cash (apply_best_promotion passes it); by default the credited amount.
    Best = highest benefit to the user; ties by staff priority (higher first),
    then the older promotion.
    """
    at = at or timezone.now()
    account = topup.account
    amount = topup.credited_amount if amount is None else amount
    qs = (
        Promotion.objects.filter(state=PromotionState.ACTIVE, starts_at__lte=at)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .filter(min_topup__lte=amount)
        .filter(Q(total_quantity__isnull=True) | Q(used_quantity__lt=F("total_quantity")))
        .filter(Q(account_kind=Audience.ANY) | Q(account_kind=_audience_of(account.user) or "-"))
        .annotate(mine=Count("redemptions", filter=Q(redemptions__account=account)))
        .filter(Q(per_user_limit__isnull=True) | Q(mine__lt=F("per_user_limit")))
    )
    earlier_paid = (
        TopUp.objects.filter(account=account, paid_at__isnull=False).exclude(pk=topup.pk).exists()
    )
    if earlier_paid:
        qs = qs.filter(new_customers_only=False)
    ranked = [(p, p.benefit_for(amount)) for p in qs]
    ranked = [(p, b) for p, b in ranked if b.amount > 0]
    ranked.sort(key=lambda pb: (-pb[1].amount, -pb[0].priority, pb[0].pk))
    return ranked


def _claim_unit(promotion):
    """Take one unit of the promotion's quantity; False when none is left (race-safe).

    A conditional UPDATE: PostgreSQL re-checks `used < total` on the row a
    concurrent claimer just updated, so the total is never exceeded.
    """
    return bool(
        Promotion.objects.filter(pk=promotion.pk, state=PromotionState.ACTIVE)
        .filter(Q(total_quantity__isnull=True) | Q(used_quantity__lt=F("total_quantity")))
        .update(used_quantity=F("used_quantity") + 1)
    )


def apply_best_promotion(topup, lot, *, at=None):
    """Grant the one promotion benefit worth most to the user, tied to `lot` (no stacking).

    Issue 24 (stated in the agreement): the discount is earned only on the part of the
    top-up that became spendable cash, the lot's cash after arrears and a dispute debt
    were paid from it; nothing is earned on money that paid a debt."""
    at = at or timezone.now()
    if PromotionRedemption.objects.filter(topup=topup).exists():
        return None
    spendable = from_micro(lot.remaining_micro)
    if spendable.amount <= 0:
        return None
    # Serialises one account's top-ups so a per-user limit can't be raced past (already
    # held when called from orders.credit_paid_topup; re-locking in one transaction is free).
    BalanceAccount.objects.select_for_update().filter(pk=topup.account_id).first()
    for promotion, benefit in promotion_candidates(topup, at=at, amount=spendable):
        if not _claim_unit(promotion):
            continue
        expires_at = (
            at + timedelta(days=promotion.bonus_validity_days)
            if promotion.bonus_validity_days
            else None
        )
        grant = ledger.grant_funds(
            topup.account,
            benefit,
            kind="discount",
            expires_at=expires_at,
            idempotency_key=f"promotion:{promotion.pk}:topup:{topup.pk}",
            source_lot=lot,
            memo=f"{promotion.name} for top-up {topup.out_trade_no}",
        )
        return PromotionRedemption.objects.create(
            promotion=promotion, account=topup.account, topup=topup, amount=benefit, grant=grant
        )
    return None


def _audited_values(promotion):
    return {name: getattr(promotion, name) for name in Promotion.AUDITED_FIELDS}


def save_promotion(promotion, *, actor, reason):
    """Staff create or change a promotion (R-ADM-5): within the configured bounds, with a
    reason, and audited with every field's old and new value."""
    perm = "topups.change_promotion" if promotion.pk else "topups.add_promotion"
    if actor is None or not actor.has_perm(perm):
        raise PermissionDenied(_("You may not change promotions."))
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason for the change."), code="reason_required")
    promotion.full_clean()
    with transaction.atomic():
        before = {}
        if promotion.pk:
            current = Promotion.objects.select_for_update().get(pk=promotion.pk)
            before = _audited_values(current)
        promotion.save()
        record_setting_change(
            promotion,
            actor=actor,
            reason=reason,
            before=before,
            after=_audited_values(promotion),
            action="change_promotion" if before else "create_promotion",
        )
    return promotion


def end_promotion(promotion, *, actor, reason, void_unused=False, batch_size=200):
    """Staff end a promotion; optionally void the unused benefits it granted."""
    promotion = apply_transition(promotion, "end", actor=actor, reason=reason)
    if void_unused:
        void_promotion_benefits(promotion, actor=actor, reason=reason, batch_size=batch_size)
    return promotion


transition_map(Promotion, {"end": end_promotion})


def void_promotion_benefits(promotion, *, actor, reason, batch_size=200):
    """Void what is left of an ended promotion's grants, in bounded batches; returns how many.

    Each batch is one transaction: ledger entries, the redemption marks and a
    notice per user land together.
    """
    if actor is not None and not actor.has_perm("topups.end_promotion"):
        raise PermissionDenied(_("You may not void promotion benefits."))
    promotion.refresh_from_db()
    if promotion.state != PromotionState.ENDED:
        raise WorkflowError(_("End the promotion before voiding its benefits."), code="wrong_state")
    total = 0
    while True:
        done = _void_batch(promotion, actor=actor, reason=reason, batch_size=batch_size)
        total += done
        if done < batch_size:
            return total


def _void_batch(promotion, *, actor, reason, batch_size):
    now = timezone.now()
    with transaction.atomic():
        batch = list(
            PromotionRedemption.objects.select_for_update(of=("self",))
            .select_related("grant", "account__user")
            .filter(promotion=promotion, voided_at__isnull=True)
            .order_by("pk")[:batch_size]
        )
        # The lock order (billing/README.md): every account of the batch at once, by id,
        # before any grant is voided, so two voiding runs cannot deadlock.
        lock_and_settle([r.account_id for r in batch])
        for redemption in batch:
            txn = ledger.void_grant(redemption.grant, reason=reason, actor=actor)
            redemption.voided_at = now
            redemption.save(update_fields=["voided_at"])
            if txn is not None:
                send_notice(
                    user=redemption.account.user,
                    kind="promotion_benefit_voided",
                    context={"promotion_id": promotion.pk, "promotion": promotion.name},
                    # one notice per user per promotion, however many benefits it voids
                    dedupe_key=f"promotion-void:{promotion.pk}:{redemption.account_id}",
                )
    return len(batch)
