"""The user's home page: the balance by kind, what needs attention, the next steps.

It reads every app (verification, balance, top-ups, refunds, disputes, invoices), each
through its selectors; each app keeps its own rules and read paths. One query per kind of
thing, whatever the user has (pinned in tests/test_home.py).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import selectors as accounts
from billing import selectors as billing
from core.money import yuan
from disputes import selectors as disputes
from invoices import selectors as invoices
from refunds import selectors as refunds
from topups import selectors as topups

EXPIRING_WITHIN = timedelta(days=7)


@dataclass
class Attention:
    level: str  # "action" (the user must do something) or "info"
    text: str
    url: str
    link: str


def _local(at):
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M")


def attention_for(account, summary, verification) -> list[Attention]:
    items = []
    if account.user.email_verified_at is None:  # issue 13: first, nothing works without it
        items.append(
            Attention(
                "action",
                _("Verify your email address: open the link we sent you before you can act."),
                reverse("accounts:resend_email_verification"),
                _("Send me a new link"),
            )
        )
    if verification is None or verification.state == accounts.VerificationState.REJECTED:
        items.append(
            Attention(
                "action",
                _("Verify your real name: top-ups need it.")
                if verification is None
                else _("Your verification was not approved: submit it again."),
                reverse("accounts:verification"),
                _("Verification"),
            )
        )
    elif verification.state == accounts.VerificationState.SUBMITTED:
        items.append(
            Attention(
                "info",
                _("Your verification is being reviewed."),
                reverse("accounts:verification"),
                _("Verification"),
            )
        )
    if account.standing != accounts.Standing.ACTIVE:
        items.append(
            Attention(
                "action",
                _("Your account is %(standing)s: API calls are refused.")
                % {"standing": account.get_standing_display()},
                reverse("disputes:index")
                if account.standing == accounts.Standing.LOCKED
                else reverse("notices:list"),
                _("Why"),
            )
        )
    if summary["arrears"].amount > 0:
        items.append(
            Attention(
                "action",
                _("You owe %(amount)s for calls your balance did not cover; top up to go on.")
                % {"amount": yuan(summary["arrears"])},
                reverse("topups:start"),
                _("Top up"),
            )
        )
    for dispute in disputes.holding_disputes(account):
        if dispute.state == disputes.DisputeState.OPEN:
            text = _(
                "A top-up is disputed: upload evidence of the payer's consent by %(deadline)s."
            ) % {"deadline": _local(dispute.deadline_at)}
        else:
            text = _("You owe %(amount)s from a dispute, due %(due)s.") % {
                "amount": yuan(dispute.debt_left),
                "due": _local(dispute.debt_due_at) if dispute.debt_due_at else "—",
            }
        items.append(
            Attention("action", text, reverse("disputes:detail", args=[dispute.pk]), _("Dispute"))
        )
    for topup in topups.unpaid_orders(account, limit=5):
        items.append(
            Attention(
                "action",
                _("Order %(number)s for %(amount)s is waiting for payment.")
                % {"number": topup.out_trade_no, "amount": yuan(topup.amount)},
                reverse("topups:detail", args=[topup.pk]),
                _("Pay or cancel"),
            )
        )
    for grant in billing.expiring_grants(account, EXPIRING_WITHIN, limit=5):
        items.append(
            Attention(
                "info",
                _("%(amount)s of %(kind)s expires on %(at)s.")
                % {
                    "amount": yuan(grant.remaining),
                    "kind": grant.get_kind_display(),
                    "at": _local(grant.expires_at),
                },
                reverse("billing:balance") + "#grants",
                _("Balance"),
            )
        )
    for refund in refunds.open_requests(account, limit=5):
        items.append(
            Attention(
                "info",
                _("Refund request #%(number)s is %(state)s.")
                % {"number": refund.pk, "state": refund.get_state_display()},
                reverse("refunds:detail", args=[refund.pk]),
                _("Refund"),
            )
        )
    invoiceable = invoices.invoiceable_for(account).invoiceable.amount
    # issue 24: offered only when the standing lets the form be used (a locked account's
    # home page must not offer an invoice the form then refuses)
    if invoiceable >= settings.INVOICE_MIN_AMOUNT and accounts.may(
        account.standing, accounts.Action.REQUEST_INVOICE
    ):
        items.append(
            Attention(
                "info",
                _("%(amount)s of consumed cash can be invoiced.") % {"amount": yuan(invoiceable)},
                reverse("invoices:index"),
                _("Invoices"),
            )
        )
    return items


def next_steps(account, summary, verification) -> list[Attention]:
    """What a new user does next, in order, until the account is in use."""
    steps = []
    if verification is None or verification.state != accounts.VerificationState.APPROVED:
        steps.append(
            Attention(
                "info",
                _("Verify your real name."),
                reverse("accounts:verification"),
                _("Verification"),
            )
        )
    if summary["available"].amount <= 0:
        steps.append(
            Attention("info", _("Top up your balance."), reverse("topups:start"), _("Top up"))
        )
    if not accounts.api_keys_of(account.user).exists():
        steps.append(
            Attention(
                "info",
                _("Create an API key for your application."),
                reverse("accounts:api_keys"),
                _("API keys"),
            )
        )
    return steps


def home_context(user):
    account = user.balance_account
    summary = billing.balance_summary(account)
    verification = accounts.latest_verification(user)
    return {
        "account": account,
        "summary": summary,
        "verification": verification,
        "attention": attention_for(account, summary, verification),
        "steps": next_steps(account, summary, verification),
        "spend_limits": billing.spend_limits_of(account),  # R-USE-7 (issue 23)
    }
