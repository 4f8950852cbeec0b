"""Alipay's asynchronous notifications (R-TOP-1, R-TOP-3): verify, then credit once.

Signing and verification themselves live in topups/alipay.py (RSA2 with
`cryptography`); this module decides what a verified notification does.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction

from billing.models import Channel
from core.money import parse_amount

from .. import alipay
from ..models import TopUp, TopUpState
from .orders import credit_paid_topup
from .payers import is_third_party

logger = logging.getLogger(__name__)


@dataclass
class NotifyResult:
    ok: bool
    outcome: str  # processed | replay | ignored | a refusal code

    @property
    def answer(self):
        return "success" if self.ok else "failure"


# Refusals that mean money may have moved at Alipay without a place here: staff must look.
ALERTED = {
    "unknown_order": "Alipay reports a payment for an order the portal does not know",
    "amount_mismatch": "Alipay reports a paid amount that differs from the order",
    "other_trade": "Alipay reports a second payment (another trade) for one order",
    "duplicate_trade_no": "Alipay reports a trade number already credited to another order",
}


def handle_alipay_notification(params):
    """Process one asynchronous Alipay notification (R-TOP-1); never credits twice.

    `params` are the posted form fields. Refusals change nothing and answer
    `failure` (Alipay retries); a known replay answers `success`. Refusals that may
    hide money taken at Alipay (unknown order, amount mismatch, a second trade for one
    order) raise a staff alert; so does any error while crediting (the ledger refused,
    the database failed), which answers `failure` so Alipay retries, never a 500.
    """
    params = {k: v for k, v in params.items() if isinstance(v, str)}
    out_trade_no = params.get("out_trade_no", "")[:64]
    try:
        result = _handle(params)
    except ImproperlyConfigured:
        raise  # the view answers failure and logs: a configuration problem, not a payment
    except Exception as exc:  # noqa: BLE001 - Alipay must get `failure` and retry
        logger.exception("Alipay notification for %s could not be processed", out_trade_no)
        _raise_alert(
            "alipay_notification_error",
            f"Alipay notification for order {out_trade_no} failed while crediting "
            f"({type(exc).__name__}: {str(exc)[:200]}); Alipay will retry. Check the ledger.",
            key=f"alipay-error:{out_trade_no}",
            details={"out_trade_no": out_trade_no, "error": type(exc).__name__},
        )
        return NotifyResult(False, "error")
    if result.outcome in ALERTED:
        _raise_alert(
            f"alipay_{result.outcome}",
            f"{ALERTED[result.outcome]}: order {out_trade_no}, trade "
            f"{params.get('trade_no', '')[:64]}, amount {params.get('total_amount', '')[:32]}.",
            key=f"alipay-{result.outcome}:{out_trade_no}:{params.get('trade_no', '')[:64]}",
            details={
                "out_trade_no": out_trade_no,
                "trade_no": params.get("trade_no", "")[:64],
                "total_amount": params.get("total_amount", "")[:32],
                "trade_status": params.get("trade_status", "")[:32],
            },
        )
    return result


def _handle(params):
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
                credit_paid_topup(
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


def _raise_alert(kind, message, *, key="", details=None):
    from ops.services import raise_alert

    try:
        with transaction.atomic():
            raise_alert(kind, message, details, key=key[:200])
    except Exception:  # an alert must never undo the caller's decision
        logger.exception("could not raise alert %s", kind)
