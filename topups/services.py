"""Top-up services (SPEC §4): each public function is one transaction.

Views, admin, the notify endpoint and jobs only parse input and call these.
Money moves only through the ledger (billing.services.ledger); this module
decides *whether* and *how much*, and records the payment case.
"""

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from djmoney.money import Money

from accounts import services as accounts_services
from accounts.models import Verification
from accounts.selectors import agreement_in_force, approved_verification, current_acceptance
from accounts.services import has_full_capacity
from billing.services import ledger
from core.models import AuditRecord
from core.money import parse_amount
from core.workflow import (
    WorkflowError,
    apply_bulk_transition,
    apply_transition,
    record_audit,
    transition_map,
)
from notices.services import send_notice

from . import alipay
from .models import (
    Channel,
    Promotion,
    PromotionRedemption,
    PromotionState,
    TopUp,
    TopUpState,
    TrialAward,
    TrialSettings,
    new_remittance_reference,
)

logger = logging.getLogger(__name__)

FINANCE_PERM = "topups.confirm_remittance"


def _normalize_name(name):
    return "".join((name or "").split()).casefold()


def holder_names(user):
    """The names a non-third-party payer may carry: the verified legal or company name."""
    verification = approved_verification(user)
    if verification is None:
        return set()
    names = {
        getattr(verification, "legal_name", "") or "",
        getattr(verification, "company_name", "") or "",
    }
    return {_normalize_name(n) for n in names if n}


def is_third_party(user, payer_name):
    """R-TOP-3: a named payer who is not the verified holder makes the lot third-party.

    A channel that reports no payer name (Alipay without buyer_user_name)
    cannot be judged and is not marked.
    """
    if not _normalize_name(payer_name):
        return False
    return _normalize_name(payer_name) not in holder_names(user)


# --- preconditions (R-TOP-1, R-ACC-2/3/7/8): the one place they are checked


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


class TopUpRefused(ValidationError):
    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__([ValidationError(p.message, code=p.code) for p in self.problems])


def amount_problems(amount, currency="CNY"):
    try:
        money = parse_amount(amount, currency=currency or "CNY")
    except ValidationError as exc:
        return [Problem(exc.code or "invalid_amount", exc.messages[0])]
    if money.amount < settings.TOPUP_MIN:
        return [Problem("below_minimum", f"The minimum top-up is {settings.TOPUP_MIN:.2f} CNY.")]
    if money.amount > settings.TOPUP_MAX:
        return [Problem("above_maximum", f"The maximum top-up is {settings.TOPUP_MAX:.2f} CNY.")]
    return []


def check_preconditions(user, *, amount=None, currency="CNY", at=None):
    """Everything that must hold for `user` to top up now; [] when they may.

    The top-up page shows these to the user; start_topup refuses on any.
    """
    at = at or timezone.now()
    problems = []
    account = user.balance_account
    verification = approved_verification(user)
    if verification is None:
        problems.append(
            Problem("not_verified", "Complete real-name verification before topping up.")
        )
    elif not has_full_capacity(user, at=at):
        problems.append(
            Problem(
                "no_capacity",
                "Top-ups need full civil capacity: account holders under 18 cannot top up "
                "unless staff have recorded the own-income exception.",
            )
        )
    if not account.can_top_up:
        problems.append(
            Problem(
                "standing",
                f"This account is {account.get_standing_display().lower()} and cannot be "
                "topped up.",
            )
        )
    version = agreement_in_force(at)
    if version is None:
        problems.append(
            Problem("no_agreement", "No service agreement is in force; top-ups are paused.")
        )
    elif current_acceptance(user, at) is None:
        problems.append(
            Problem(
                "agreement_not_accepted",
                "Accept the service agreement in force to top up.",
            )
        )
    if amount is not None:
        problems.extend(amount_problems(amount, currency))
    return problems


def start_topup(
    user, amount, *, channel, currency="CNY", accept_version=None, ip="", at=None, actor=None
):
    """Create a top-up order awaiting payment, or raise TopUpRefused listing every problem.

    `accept_version` (the agreement version's id shown on the page) records the
    user's acceptance first when it is the version in force (R-ACC-7); the
    acceptance in force is stored on the top-up.
    """
    from accounts.models import BalanceAccount

    at = at or timezone.now()
    if channel not in (Channel.ALIPAY, Channel.BANK, Channel.OTHER):
        raise TopUpRefused([Problem("channel", "Choose Alipay or bank transfer.")])
    if channel == Channel.OTHER and not (actor and actor.has_perm(FINANCE_PERM)):
        raise PermissionDenied("Only finance records manual top-ups.")
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
                from accounts.services import accept_agreement

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


# --- payment: one transaction records it, credits the lot, applies a promotion (R-TOP-2)


def _credit(topup, *, transition, actor, reason, amount, **transition_kwargs):
    """Run the paying transition, credit the lot, apply the best promotion, tell the user.

    The caller holds the top-up's row lock inside its transaction; the ledger's
    idempotency key (one per top-up order) is the second guard against a double credit.
    """
    from accounts.models import BalanceAccount

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


@dataclass
class NotifyResult:
    ok: bool
    outcome: str  # processed | replay | ignored | a refusal code

    @property
    def answer(self):
        return "success" if self.ok else "failure"


def handle_alipay_notification(params):
    """Process one asynchronous Alipay notification (R-TOP-1); never credits twice.

    `params` are the posted form fields. Refusals change nothing and answer
    `failure` (Alipay retries); a known replay answers `success`.
    """
    params = {k: v for k, v in params.items() if isinstance(v, str)}
    if not alipay.verify(params, alipay.alipay_public_key()):
        return NotifyResult(False, "bad_signature")
    if params.get("app_id") != settings.ALIPAY_APP_ID:
        return NotifyResult(False, "wrong_app_id")
    if settings.ALIPAY_SELLER_ID and params.get("seller_id") != settings.ALIPAY_SELLER_ID:
        return NotifyResult(False, "wrong_seller")
    status = params.get("trade_status", "")
    trade_no = params.get("trade_no", "")
    try:
        paid_amount = parse_amount(params.get("total_amount", ""))
    except ValidationError:
        return NotifyResult(False, "bad_amount")
    with transaction.atomic():
        topup = (
            TopUp.objects.select_for_update()
            .select_related("account__user")
            .filter(out_trade_no=params.get("out_trade_no", ""), channel=Channel.ALIPAY)
            .first()
        )
        if topup is None:
            return NotifyResult(False, "unknown_order")
        if paid_amount != topup.amount:
            return NotifyResult(False, "amount_mismatch")
        if status not in alipay.PAID_STATUSES:
            return NotifyResult(True, "ignored")  # e.g. WAIT_BUYER_PAY, TRADE_CLOSED: nothing to do
        if topup.state in (TopUpState.PAID, TopUpState.REFUNDED):
            if topup.trade_no == trade_no:
                if status == "TRADE_FINISHED" and topup.channel_status != status:
                    TopUp.objects.filter(pk=topup.pk).update(channel_status=status)
                return NotifyResult(True, "replay")
            return NotifyResult(False, "other_trade")
        if topup.state != TopUpState.CREATED:
            # Money taken for an order that is closed here: staff must return it by hand.
            logger.warning("Alipay paid a closed top-up %s (%s)", topup.pk, topup.state)
            _raise_alert(
                "topup_paid_after_close",
                f"Alipay reports payment for top-up {topup.out_trade_no} in state {topup.state}; "
                "return the money to the payer.",
                key=f"topup-paid-after-close:{topup.out_trade_no}",
            )
            return NotifyResult(False, "order_closed")
        if not trade_no:
            return NotifyResult(False, "no_trade_no")
        payer_name = params.get("buyer_user_name", "")
        payer_account = params.get("buyer_logon_id", "") or params.get("buyer_id", "")
        try:
            with transaction.atomic():
                _credit(
                    topup,
                    transition="pay",
                    actor=None,
                    reason=f"Alipay {status}",
                    amount=topup.amount,
                    trade_no=trade_no,
                    channel_status=status,
                    payer_name=payer_name,
                    payer_account=payer_account,
                    third_party=is_third_party(topup.account.user, payer_name),
                )
        except IntegrityError:
            return NotifyResult(False, "duplicate_trade_no")
    return NotifyResult(True, "processed")


def _raise_alert(kind, message, *, key=""):
    from ops.services import raise_alert

    try:
        with transaction.atomic():
            raise_alert(kind, message, key=key)
    except Exception:  # an alert must never undo the caller's decision
        logger.exception("could not raise alert %s", kind)


def confirm_remittance(
    topup,
    *,
    actor,
    received_amount,
    payer_name,
    payer_account,
    bank_reference,
    reason="",
):
    """Finance confirms money seen on the platform's account (bank / other channel).

    A received amount equal to the order credits it now; a different one goes
    to `review` and credits nothing. A top-up is confirmed once.
    """
    if actor is None or not actor.has_perm(FINANCE_PERM):
        raise PermissionDenied("Only finance staff confirm remittances.")
    received = parse_amount(received_amount)
    bank_reference = (bank_reference or "").strip()
    if not bank_reference:
        raise ValidationError("The bank's transaction reference is required.", code="required")
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().select_related("account__user").get(pk=topup.pk)
        if locked.channel == Channel.ALIPAY:
            raise WorkflowError("Alipay top-ups are confirmed by Alipay.", code="wrong_channel")
        if locked.state != TopUpState.CREATED:
            raise WorkflowError(
                f"This top-up is already {locked.get_state_display().lower()}; "
                "a remittance is confirmed once.",
                code="wrong_state",
            )
        if (
            TopUp.objects.filter(channel=locked.channel, trade_no=bank_reference)
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise WorkflowError(
                "This bank transaction reference already confirmed another top-up.",
                code="duplicate_reference",
            )
        details = {
            "received_amount": received,
            "payer_name": payer_name.strip(),
            "payer_account": payer_account.strip(),
            "bank_reference": bank_reference,
            "third_party": is_third_party(locked.account.user, payer_name),
        }
        if received != locked.amount:
            return apply_transition(
                locked, "send_to_review", actor=actor, reason=reason or "amount differs", **details
            )
        if not locked.account.can_top_up:
            # Money arrived for an account that may not top up now (R-ACC-8: frozen or
            # terminated): never credited silently; finance decides in review.
            standing = locked.account.get_standing_display().lower()
            return apply_transition(
                locked,
                "send_to_review",
                actor=actor,
                reason=f"account is {standing}; {reason}".strip("; "),
                **details,
            )
        _credit(
            locked,
            transition="confirm_remittance",
            actor=actor,
            reason=reason,
            amount=received,
            **details,
        )
    topup.refresh_from_db()
    return topup


def record_manual_topup(user, amount, *, actor, payer_name, payer_account, reference, reason):
    """Finance records money received outside Alipay and bank transfer (channel "other").

    The user's preconditions apply as for any top-up; the order is created and
    confirmed in one transaction.
    """
    if actor is None or not actor.has_perm(FINANCE_PERM):
        raise PermissionDenied("Only finance staff record manual top-ups.")
    if not (reason or "").strip():
        raise ValidationError("Give a reason.", code="required")
    with transaction.atomic():
        topup = start_topup(user, amount, channel=Channel.OTHER, actor=actor)
        return confirm_remittance(
            topup,
            actor=actor,
            received_amount=amount,
            payer_name=payer_name,
            payer_account=payer_account,
            bank_reference=reference,
            reason=reason,
        )


def resolve_review(topup, name, *, actor, reason):
    """Finance settles a top-up whose received amount differed: credit what came, or return it."""
    if name not in ("credit_received", "return_to_payer"):
        raise WorkflowError(f"Unknown resolution {name!r}.", code="unknown_transition")
    if not (reason or "").strip():
        raise ValidationError("Give a reason.", code="required")
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().select_related("account__user").get(pk=topup.pk)
        if locked.state != TopUpState.REVIEW:
            raise WorkflowError("This top-up is not in review.", code="wrong_state")
        if name == "return_to_payer":
            apply_transition(locked, name, actor=actor, reason=reason)
        elif not locked.account.can_top_up:
            raise WorkflowError(
                f"The account is {locked.account.get_standing_display().lower()} and may not "
                "receive top-ups now (R-ACC-8); return the money to the payer instead.",
                code="standing",
            )
        else:
            _credit(
                locked, transition=name, actor=actor, reason=reason, amount=locked.received_amount
            )
    topup.refresh_from_db()
    return topup


def cancel_topup(topup, *, actor, reason=""):
    """The user (or staff) cancels an order still awaiting payment."""
    return apply_transition(topup, "cancel", actor=actor, reason=reason or "cancelled by user")


def credit_received(topup, *, actor, reason="", **form_data):
    """Finance credit the amount actually received on a top-up in review."""
    return resolve_review(topup, "credit_received", actor=actor, reason=reason)


def return_to_payer(topup, *, actor, reason="", **form_data):
    """Finance send the money of a top-up in review back to the payer."""
    return resolve_review(topup, "return_to_payer", actor=actor, reason=reason)


def cancel_topup_transition(topup, *, actor, reason="", **form_data):
    return cancel_topup(topup, actor=actor, reason=reason)


transition_map(
    TopUp,
    {
        "confirm_remittance": confirm_remittance,
        "credit_received": credit_received,
        "return_to_payer": return_to_payer,
        "cancel": cancel_topup_transition,
    },
)


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


# --- bank statement import (welcome extra): all rows valid, or nothing applied


@dataclass
class StatementReport:
    confirmed: list = field(default_factory=list)
    reviewed: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (line number, message)


STATEMENT_COLUMNS = ("reference", "amount", "payer_name", "payer_account", "bank_reference")


def import_bank_statement(text, *, actor):
    """Match statement rows to bank top-ups by remittance reference and confirm them.

    Every row is checked first; any bad row means nothing is applied and the
    report lists them.
    """
    if actor is None or not actor.has_perm(FINANCE_PERM):
        raise PermissionDenied("Only finance staff import bank statements.")
    report = StatementReport()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in STATEMENT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        report.errors.append((1, f"missing columns: {', '.join(missing)}"))
        return report
    rows = []
    seen = set()
    for line, row in enumerate(reader, start=2):
        ref = (row.get("reference") or "").strip().upper()
        topup = TopUp.objects.filter(remittance_reference=ref).first() if ref else None
        try:
            parse_amount(row.get("amount") or "")
        except ValidationError as exc:
            report.errors.append((line, exc.messages[0]))
            continue
        if topup is None:
            report.errors.append((line, f"no top-up with reference {ref!r}"))
        elif topup.state != TopUpState.CREATED:
            report.errors.append((line, f"{ref} is already {topup.state}"))
        elif ref in seen:
            report.errors.append((line, f"{ref} appears twice"))
        elif not (row.get("bank_reference") or "").strip():
            report.errors.append((line, "bank_reference is empty"))
        else:
            seen.add(ref)
            rows.append((line, topup, row))
    if report.errors:
        return report
    line = 0
    try:
        with transaction.atomic():
            for line, topup, row in rows:  # noqa: B007 (line names the failing row below)
                result = confirm_remittance(
                    topup,
                    actor=actor,
                    received_amount=row["amount"].strip(),
                    payer_name=row.get("payer_name") or "",
                    payer_account=row.get("payer_account") or "",
                    bank_reference=row["bank_reference"].strip(),
                    reason="bank statement import",
                )
                bucket = report.confirmed if result.state == TopUpState.PAID else report.reviewed
                bucket.append(result.remittance_reference)
    except ValidationError as exc:
        report.errors.append((line, "; ".join(exc.messages)))
        report.confirmed.clear()
        report.reviewed.clear()
    return report


# --- promotions (R-TOP-4)


def _account_kind(user):
    verification = approved_verification(user)
    return getattr(verification, "kind", None) if verification else None


def promotion_candidates(topup, *, at=None):
    """Promotions this paid top-up qualifies for, with their benefit, best first.

    Best = highest benefit to the user; ties by staff priority (higher first),
    then the older promotion.
    """
    at = at or timezone.now()
    account = topup.account
    amount = topup.credited_amount
    qs = (
        Promotion.objects.filter(state=PromotionState.ACTIVE, starts_at__lte=at)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .filter(min_topup__lte=amount)
        .filter(Q(total_quantity__isnull=True) | Q(used_quantity__lt=F("total_quantity")))
        .filter(Q(account_kind="any") | Q(account_kind=_account_kind(account.user) or "-"))
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
    """Grant the one promotion benefit worth most to the user, tied to `lot` (no stacking)."""
    from accounts.models import BalanceAccount

    at = at or timezone.now()
    if PromotionRedemption.objects.filter(topup=topup).exists():
        return None
    # Serialises one account's top-ups so a per-user limit can't be raced past
    # (already held when called from _credit; re-locking in one transaction is free).
    BalanceAccount.objects.select_for_update().filter(pk=topup.account_id).first()
    for promotion, benefit in promotion_candidates(topup, at=at):
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
        raise PermissionDenied("You may not void promotion benefits.")
    promotion.refresh_from_db()
    if promotion.state != PromotionState.ENDED:
        raise WorkflowError("End the promotion before voiding its benefits.", code="wrong_state")
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


# --- trial funds (R-TOP-5, R-ACC-4)


def approve_verification(verification, *, actor=None, reason="", **form_data):
    """Staff approve a real-name verification: the identity checks and the user's
    notice (accounts), then the trial funds (R-TOP-5), all in one transaction."""
    with transaction.atomic():
        verification = accounts_services.approve_verification(
            verification, actor=actor, reason=reason
        )
        award_trial(verification)
    return verification


def reject_verification(verification, *, actor=None, reason="", **form_data):
    return accounts_services.reject_verification(verification, actor=actor, reason=reason)


def revoke_verification(verification, *, actor=None, reason="", **form_data):
    return accounts_services.revoke_verification(verification, actor=actor, reason=reason)


# The verification's map is declared here, not in accounts, because approval moves
# money (trial funds) and accounts may not import the apps above it (README, Layout).
transition_map(
    Verification,
    {
        "approve": approve_verification,
        "reject": reject_verification,
        "revoke": revoke_verification,
    },
)


def award_trial(verification, *, at=None):
    """Grant trial funds for a newly approved verification, once per identity.

    Runs inside the approval's transaction (approve_verification above). The
    unique TrialAward.identity_hash is what makes 'once' hold under races and
    across accounts. Returns the grant, or None when nothing is due.
    """
    at = at or timezone.now()
    identity_hash = getattr(verification, "identity_hash", "") or ""
    trial = TrialSettings.load()
    if not identity_hash or not trial.enabled or trial.amount.amount <= 0:
        return None
    account = verification.user.balance_account
    try:
        with transaction.atomic():
            award = TrialAward.objects.create(
                identity_hash=identity_hash, account=account, amount=trial.amount
            )
    except IntegrityError:
        return None  # this identity already had its trial
    grant = ledger.grant_funds(
        account,
        Money(trial.amount.amount, "CNY"),
        kind="trial",
        expires_at=at + timedelta(days=trial.validity_days),
        idempotency_key=f"trial:{identity_hash}",
        memo="Trial funds",
    )
    award.grant = grant
    award.save(update_fields=["grant"])
    send_notice(
        user=account.user,
        kind="trial_granted",
        context={"grant": grant.pk, "amount": trial.amount, "expires_at": grant.expires_at},
        dedupe_key=f"trial-granted:{award.pk}",
    )
    return grant


def change_grant_validity(grant, expires_at, *, actor, reason):
    """Staff extend or shorten a grant's validity (R-TOP-5): audited, the user is told."""
    from billing.models import Grant

    if actor is None or not actor.has_perm("topups.change_grant_validity"):
        raise PermissionDenied("You may not change a grant's validity.")
    if not (reason or "").strip():
        raise ValidationError("Give a reason.", code="required")
    now = timezone.now()
    if expires_at <= now:
        raise ValidationError("The new expiry must be in the future.", code="past_expiry")
    with transaction.atomic():
        locked = Grant.objects.select_for_update().select_related("account__user").get(pk=grant.pk)
        if getattr(locked, "state", "active") != "active" or locked.remaining.amount <= 0:
            raise WorkflowError("Only an active grant with funds left can change.", code="state")
        old = locked.expires_at
        Grant.objects.filter(pk=locked.pk).update(expires_at=expires_at)
        locked.expires_at = expires_at
        audit = record_audit(
            locked,
            action="change_validity",
            actor=actor,
            reason=reason,
            old_expires_at=old.isoformat() if old else "",
            new_expires_at=expires_at.isoformat(),
        )
        send_notice(
            user=locked.account.user,
            kind="grant_validity_changed",
            context={
                "grant": locked.pk,
                "grant_kind": locked.kind,
                "amount": locked.remaining,
                "expires_at": expires_at,
                "old_expires_at": old,
                "reason": reason.strip(),
            },
            dedupe_key=f"grant-validity:{audit.pk}",
        )
    return locked


def grant_history(grant):
    """Validity changes of one grant, newest first (for the admin page)."""
    from django.contrib.contenttypes.models import ContentType

    from billing.models import Grant

    return (
        AuditRecord.objects.filter(
            content_type=ContentType.objects.get_for_model(Grant),
            object_id=str(grant.pk),
        )
        .select_related("actor")
        .order_by("-at", "-id")
    )
