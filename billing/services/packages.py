"""Resource packages (R-PKG-1 … R-PKG-3): the catalogue staff maintain, buying one
from the balance, and the end of its validity.

Books, with f the face value and p the price. A purchase is ONE ledger transaction:
trial/discount/cash −p (drawn in the deduction order, R-USE-2; never into arrears,
R-USE-3), package[holding] +f, and promotion expense −(f − p) for the face value the
price does not pay (or, for a price above the face value, revenue +(p − f)). Usage a
package pays is package[holding] −x, revenue +x (settlement); the unused face value at
the end of validity is package[holding] −r, revenue +r (expired prepaid usage). So
revenue is recognised as the package is used or expires. The cash spent is consumed
(the lot's remaining falls, as with any usage), so refunds never see it (R-REF-2) and
invoices count it as consumed cash.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.standing import Action, refusal_code
from core.workflow import record_setting_change

from ..chart import platform_account_id
from ..micro import to_micro
from ..models import (
    AccountKind,
    HoldingState,
    LedgerTransaction,
    PackageHolding,
    ResourcePackage,
    TxnKind,
)
from .authorization import consumption_refusal
from .deduction import load_sources, plan_deduction
from .engine import Entry, LedgerError, Leg, write
from .limits import yuan

PERM = "billing.manage_resource_packages"
AUDITED = (
    "name_zh",
    "name_en",
    "models_covered",
    "face_micro",
    "price",
    "validity_days",
    "sale_starts_at",
    "sale_ends_at",
    "per_user_limit",
    "active",
)
REMINDER_DAYS = 3

# the refusal codes of a purchase, and what the user reads (pages translate them)
REFUSALS = {
    "not_on_sale": "This package is not on sale.",
    "per_user_limit": "You already bought this package as many times as allowed.",
    "email_unverified": "Verify your email address first.",
    "insufficient_balance": "Your available balance does not cover the full price.",
    "arrears": "Pay your arrears first.",
}


class PackageRefused(LedgerError):
    """A purchase refused; `.code` is one of REFUSALS or a standing code (R-ACC-8)."""


def _refuse(code):
    raise PackageRefused(REFUSALS.get(code, "This account may not buy now."), code=code)


# ---------------------------------------------------------------- the catalogue (R-PKG-1)


def _values(pkg) -> dict:
    return {name: getattr(pkg, name) for name in AUDITED}


def save_package(package: ResourcePackage, *, actor, reason) -> ResourcePackage:
    """Staff create or change a catalogue entry: their own permission, a reason, an
    audit with old and new values (R-ADM-5). A package on sale (now, or before this
    change) keeps its price and face value: retire it and add a new one (R-PKG-1)."""
    if actor is None or not actor.has_perm(PERM):
        raise PermissionDenied("You may not change resource packages.")
    if not (reason or "").strip():
        raise ValidationError("Give a reason for the change.", code="reason_required")
    models = [m.strip() for m in (package.models_covered or []) if str(m).strip()]
    if not models:
        raise ValidationError("Name at least one model.", code="no_models")
    package.models_covered = sorted(set(models))
    if package.price is not None and to_micro(package.price.amount) % 10_000:
        raise ValidationError("The price must be whole fen.", code="too_many_decimals")
    package.full_clean()
    now = timezone.now()
    with transaction.atomic():
        before = {}
        if package.pk:
            current = ResourcePackage.objects.select_for_update().get(pk=package.pk)
            before = _values(current)
            if current.on_sale(now) and (
                current.price != package.price or current.face_micro != package.face_micro
            ):
                raise ValidationError(
                    "A package on sale cannot change its price or face value; retire it "
                    "and add a new one.",
                    code="package_on_sale",
                )
        package.save()
        record_setting_change(
            package,
            actor=actor,
            reason=reason,
            before=before,
            after=_values(package),
            action="change_package" if before else "create_package",
        )
    return package


def on_sale(now=None):
    now = now or timezone.now()
    return [p for p in ResourcePackage.objects.filter(active=True) if p.on_sale(now)]


def bought_count(account_id, package_id) -> int:
    return PackageHolding.objects.filter(account_id=account_id, package_id=package_id).count()


# ---------------------------------------------------------------- buying (R-PKG-2)


def buy_package(*, account, package_id, idempotency_key: str) -> PackageHolding:
    """Buy a package from the balance: all or nothing (R-USE-3), paid in the deduction
    order after pending usage is settled (R-USE-5), one ledger transaction; the
    package becomes a holding in the package bucket until it expires. A replay of the
    same idempotency key (a double click) returns the first holding. Refusals raise
    PackageRefused with a stable code and move nothing."""
    key = f"package:{account.pk}:{idempotency_key}"[:200]
    found = PackageHolding.objects.filter(idempotency_key=key).first()
    if found:
        return found
    if not getattr(account.user, "email_verified", True):
        _refuse("email_unverified")
    if not account.may(Action.CONSUME):
        _refuse(refusal_code(account.standing, Action.CONSUME) or "refused")
    from .settlement import lock_and_settle

    try:
        with transaction.atomic():
            buckets = lock_and_settle([account.pk])[account.pk]
            if consumption_refusal(None, buckets.standing):
                _refuse(refusal_code(buckets.standing, Action.CONSUME) or "refused")
            now = timezone.now()
            # the catalogue row locked too: two purchases of the last allowed one
            # queue here (they also share the account lock; this covers the sale window)
            pkg = ResourcePackage.objects.select_for_update().filter(pk=package_id).first()
            if pkg is None or not pkg.on_sale(now):
                _refuse("not_on_sale")
            if pkg.per_user_limit is not None and (
                bought_count(account.pk, pkg.pk) >= pkg.per_user_limit
            ):
                _refuse("per_user_limit")
            if buckets.arrears_micro > 0:
                _refuse("arrears")
            price = to_micro(pkg.price.amount)
            sources = [
                s for s in load_sources({account.pk: buckets}, now)[account.pk] if s.models is None
            ]
            if sum(s.remaining for s in sources) < price:
                _refuse("insufficient_balance")
            holding = PackageHolding.objects.create(
                account=account,
                package=pkg,
                models_covered=list(pkg.models_covered),
                face_micro=pkg.face_micro,
                price_micro=price,
                expires_at=now + dt.timedelta(days=pkg.validity_days),
                idempotency_key=key,
            )
            legs, _split, _parts = plan_deduction(price, sources, buckets)
            legs.append(
                Leg(
                    buckets[AccountKind.PACKAGE].pk,
                    AccountKind.PACKAGE.value,
                    pkg.face_micro,
                    holding_id=holding.pk,
                )
            )
            # the price is revenue as the package is used or expires, not now
            legs = [leg for leg in legs if leg.bucket != "revenue"]
            gap = pkg.face_micro - price
            if gap > 0:  # face value the price does not pay: the platform's expense
                expense = platform_account_id(AccountKind.PROMOTION_EXPENSE)
                legs.append(Leg(expense, "promotion_expense", -gap))
            elif gap < 0:  # a price above the face value: the surplus is revenue at once
                legs.append(Leg(platform_account_id(AccountKind.REVENUE), "revenue", -gap))
            write([Entry(TxnKind.PURCHASE, account.pk, legs, key, f"Package {pkg.name_en}"[:200])])
            return holding
    except IntegrityError:
        found = PackageHolding.objects.filter(idempotency_key=key).first()
        if found is None:
            raise
        return found


# ---------------------------------------------------------------- expiry (R-PKG-3)


def _pass_ingest_gate() -> bool:
    """Every ingestion stamped before now has committed (metering.INGEST_GATE), so the
    settlement below sees each event received before a package's expiry."""
    from django.conf import settings
    from django.db import OperationalError

    from .metering import INGEST_GATE

    wait_ms = int(float(getattr(settings, "USAGE_EXPIRY_GATE_WAIT", 2)) * 1000)
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wait_ms}ms"])
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [INGEST_GATE])
    except OperationalError:
        return False
    return True


def expire_due_packages(*, now=None, limit=500) -> int:
    """End packages whose validity is over: the account's pending usage is settled
    first (an event received before the expiry is paid by the package, R-PKG-3), then
    the unused face value goes to revenue as expired prepaid usage, one ledger
    transaction per package. Returns how many packages ended."""
    from .settlement import lock_and_settle

    now = now or timezone.now()
    due = list(
        PackageHolding.objects.filter(state=HoldingState.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "id")
        .values_list("account_id", flat=True)[:limit]
    )
    if not due or not _pass_ingest_gate():
        return 0
    ended = 0
    for account_id in sorted(set(due)):
        with transaction.atomic():
            buckets = lock_and_settle([account_id])[account_id]
            holdings = list(
                PackageHolding.objects.select_for_update().filter(
                    account_id=account_id, state=HoldingState.ACTIVE, expires_at__lte=now
                )
            )
            entries = [
                Entry(
                    TxnKind.PACKAGE_EXPIRY,
                    account_id,
                    [
                        Leg(
                            buckets[AccountKind.PACKAGE].pk,
                            "package",
                            -h.remaining_micro,
                            holding_id=h.pk,
                        ),
                        Leg(platform_account_id(AccountKind.REVENUE), "revenue", h.remaining_micro),
                    ],
                    f"package-expiry:{h.pk}",
                    "Resource package expired",
                )
                for h in holdings
                if h.remaining_micro > 0
            ]
            write(entries)
            for h in holdings:
                left = h.remaining_micro
                # state only (the cache moved with the postings, in the engine)
                PackageHolding.objects.filter(pk=h.pk).update(
                    state=HoldingState.EXPIRED, ended_at=now
                )
                _notify(h, "package_expired", {"unused": yuan(left)}, f"expired:{h.pk}")
                ended += 1
    return ended


def send_expiry_reminders(*, now=None, limit=500) -> int:
    """One reminder per package, 3 days before it expires with face value unused."""
    now = now or timezone.now()
    soon = now + dt.timedelta(days=REMINDER_DAYS)
    sent = 0
    for h in PackageHolding.objects.filter(
        state=HoldingState.ACTIVE,
        reminded_at__isnull=True,
        remaining_micro__gt=0,
        expires_at__gt=now,
        expires_at__lte=soon,
    ).select_related("package")[:limit]:
        with transaction.atomic():
            if PackageHolding.objects.filter(pk=h.pk, reminded_at__isnull=True).update(
                reminded_at=now
            ):
                _notify(
                    h,
                    "package_expiring",
                    {"unused": yuan(h.remaining_micro), "expires_at": h.expires_at},
                    f"expiring:{h.pk}",
                )
                sent += 1
    return sent


def _notify(holding, kind, context, key):
    from accounts.models import BalanceAccount
    from notices.services import send_notice

    account = BalanceAccount.objects.select_related("user").get(pk=holding.account_id)
    pkg = ResourcePackage.objects.get(pk=holding.package_id)
    send_notice(
        user=account.user,
        kind=kind,
        context={"name_zh": pkg.name_zh, "name_en": pkg.name_en, **context},
        dedupe_key=f"package:{key}",
    )


def purchases_of(account_id):
    return LedgerTransaction.objects.filter(account_id=account_id, kind=TxnKind.PURCHASE)
