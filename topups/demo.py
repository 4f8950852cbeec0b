"""Demo data for top-ups: a running promotion, a paid top-up and a transfer awaiting finance."""

from datetime import timedelta

from django.utils import timezone
from djmoney.money import Money

from accounts.selectors import agreement_in_force

from .models import Promotion, TopUp
from .services.orders import start_topup
from .services.preconditions import check_preconditions
from .services.remittances import confirm_remittance, record_manual_topup
from .services.trials import approve_verification


def seed(context):
    users = context.get("users", {})
    verification = context.pop("verification_to_approve", None)
    if verification is not None:
        cs = users["CS agent"]
        actor = cs if cs.has_perm("accounts.review_verification") else None
        approve_verification(verification, actor=actor, reason="demo: documents match")

    if not Promotion.objects.filter(name="Launch bonus: 10% on top-ups").exists():
        Promotion.objects.create(
            name="Launch bonus: 10% on top-ups",
            kind="limited_time_discount",
            starts_at=timezone.now() - timedelta(days=1),
            ends_at=timezone.now() + timedelta(days=60),
            min_topup=Money("50.00", "CNY"),
            total_quantity=1000,
            per_user_limit=3,
            benefit_type="percent",
            benefit_percent=10,
            benefit_cap=Money("200.00", "CNY"),
            bonus_validity_days=90,
            priority=10,
        )
    users = context.get("users", {})
    user, finance = users.get("user"), users.get("finance approver")
    if user is None or finance is None:
        return
    if TopUp.objects.filter(account__user=user).exists():
        return
    version = agreement_in_force(None)
    problems = [p for p in check_preconditions(user) if p.code != "agreement_not_accepted"]
    if problems or version is None:
        context["notes"].append(
            "Top-ups: demo user cannot top up yet (" + "; ".join(p.message for p in problems) + ")"
        )
        return
    # The demo user accepts the agreement in force with the first order, as on the page.
    paid = start_topup(user, "300.00", channel="bank", accept_version=version.pk, ip="127.0.0.1")
    confirm_remittance(
        paid,
        actor=finance,
        received_amount="300.00",
        payer_name="",
        payer_account="6222 0000 0000 0001",
        bank_reference="DEMO-BANK-0001",
        reason="demo data",
    )
    pending = start_topup(user, "120.00", channel="bank")
    context["notes"].append(
        f"Top-ups: bank transfer {pending.remittance_reference} (120.00 CNY) awaits finance "
        "confirmation in admin → Top-ups."
    )
    # Four eyes (R-ADM-4): a payment received at the counter, recorded by one finance
    # approver, waits for the other to approve it before it is credited.
    finance2 = users.get("finance approver 2")
    if finance2 is not None:
        manual = record_manual_topup(
            user,
            "88.00",
            actor=finance,
            payer_name="",
            payer_account="counter receipt 0001",
            reference="DEMO-COUNTER-0001",
            reason="demo: paid at the counter",
        )
        context["notes"].append(
            f"Top-ups: manual payment {manual.out_trade_no} (88.00 CNY) recorded by "
            f"{finance.email} awaits a second approver: log in as {finance2.email} and "
            "approve it in admin → Top-ups (four eyes)."
        )
