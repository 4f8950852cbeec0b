"""The notice kinds users can receive, and how each is delivered.

Adding a kind is one `register(...)` line here plus its templates under
templates/notices/<key>/ (subject.txt, body.txt and the zh-hans variants
subject.zh-hans.txt, body.zh-hans.txt); the event then calls
`notices.services.send_notice(user=..., kind="<key>", context=..., dedupe_key=...)`.

`required` kinds are the ones the service agreement makes us deliver (money
leaving the balance, the account's standing, agreement changes, identity):
users cannot turn their email off. Optional kinds are receipts and courtesy
alerts the user may stop getting by email; they still appear in the pages.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class NoticeKind:
    key: str
    label: str
    required: bool
    sms: bool = False  # also sent by SMS (urgent things) when the user has a phone number


KINDS: dict[str, NoticeKind] = {}


def register(key, label, *, required, sms=False):
    KINDS[key] = NoticeKind(key=key, label=label, required=required, sms=sms)
    return KINDS[key]


class UnknownNoticeKind(ValueError):
    """A kind nobody registered: a programming error, refused before anything is stored."""


def get_kind(key) -> NoticeKind:
    try:
        return KINDS[key]
    except KeyError:
        raise UnknownNoticeKind(f"Unknown notice kind {key!r}")


def optional_kinds():
    return [kind for kind in KINDS.values() if not kind.required]


def is_required(key) -> bool:
    return get_kind(key).required


register("verification_approved", _("Identity verification approved"), required=True)
register("verification_rejected", _("Identity verification not approved"), required=True)
register("verification_revoked", _("Identity verification revoked"), required=True)
register("topup_credited", _("Top-up credited (receipt)"), required=False)
register("trial_granted", _("Trial funds granted"), required=False)
register("trial_expiring", _("Trial or bonus funds expiring in 3 days"), required=True)
register("trial_expired", _("Trial or bonus funds expired"), required=True)
register("low_balance", _("Balance below your alert threshold"), required=False, sms=True)
register("service_stopped", _("Service stopped: balance used up"), required=True, sms=True)
register("agreement_published", _("New version of the service agreement"), required=True)
register("promotion_benefit_voided", _("Promotion benefit voided"), required=True)
register("grant_validity_changed", _("Validity of trial or bonus funds changed"), required=True)
register("standing_changed", _("Account standing changed"), required=True, sms=True)
register("refund_submitted", _("Refund request received (money set aside)"), required=True)
register("refund_approved", _("Refund approved"), required=True)
register("refund_rejected", _("Refund not approved"), required=True)
register("refund_cancelled", _("Refund request cancelled"), required=True)
register("refund_paid", _("Refund paid out"), required=True)
register("refund_payout_failed", _("Refund payout refused by the channel"), required=True)

# Disputes (issue 11): register the disputes app's kinds below this line.
register("dispute_opened", _("Top-up disputed: account locked, evidence needed"), required=True)
register("dispute_evidence_rejected", _("Dispute evidence not accepted"), required=True)
register("dispute_cleared", _("Dispute cleared: account unlocked"), required=True)
register("dispute_deadline_reminder", _("Dispute deadline approaching"), required=True)
register("dispute_refunded", _("Disputed amount refunded to the rights holder"), required=True)
register("dispute_debt_reminder", _("Dispute debt due soon"), required=True)
register("dispute_debt_escalated", _("Dispute debt overdue"), required=True)
register("dispute_settled", _("Dispute settled: account unlocked"), required=True)

# Invoices (issue 12): register the invoices app's kinds below this line.
register("invoice_issued", _("Invoice issued (with the electronic invoice)"), required=True)
register("invoice_rejected", _("Invoice request not accepted"), required=True)
register("invoice_reversed", _("Invoice reversed (red-letter)"), required=True)

# Email verification (issue 13): the link a new account opens before it can act.
register("email_verification", _("Verify your email address"), required=True)

# Spend limits and resource packages (issue 23).
register("spend_limit_reached", _("Spend limit 50 %, 80 % or 100 % used"), required=False)
register("package_expiring", _("Resource package expiring in 3 days"), required=True)
register("package_expired", _("Resource package expired"), required=True)

# The user's own account (issue 22): reset link, email change link, security alerts
# (password changed or reset, email changed: sent to the old address too).
register("password_reset", _("Password reset link"), required=True)
register("email_change", _("Confirm your new email address"), required=True)
register("security_alert", _("Password or email address changed"), required=True)
