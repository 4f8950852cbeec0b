"""Whether a user may top up now (R-TOP-1 with R-ACC-2/3/7/8, and the verified email address
of issue 13): the one place it is checked.

The top-up page lists these problems to the user; orders.start_topup refuses on any.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import agreement_in_force, approved_verification, current_acceptance
from accounts.services import has_full_capacity
from accounts.standing import Action
from core.money import parse_amount

# Finance confirm remittances, import bank statements and record manual ("other") payments.
FINANCE_PERM = "topups.confirm_remittance"


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
        return [
            Problem(
                "below_minimum",
                _("The minimum top-up is %(amount)s CNY.")
                % {"amount": f"{settings.TOPUP_MIN:.2f}"},
            )
        ]
    if money.amount > settings.TOPUP_MAX:
        return [
            Problem(
                "above_maximum",
                _("The maximum top-up is %(amount)s CNY.")
                % {"amount": f"{settings.TOPUP_MAX:.2f}"},
            )
        ]
    return []


def check_preconditions(user, *, amount=None, currency="CNY", at=None):
    """Everything that must hold for `user` to top up now; [] when they may.

    The top-up page shows these to the user; start_topup refuses on any.
    """
    at = at or timezone.now()
    problems = []
    account = user.balance_account
    if user.email_verified_at is None:
        problems.append(
            Problem(
                "email_not_verified",
                _("Verify your email address first: open the link we sent you to top up."),
            )
        )
    verification = approved_verification(user)
    if verification is None:
        problems.append(
            Problem("not_verified", _("Complete real-name verification before topping up."))
        )
    elif not has_full_capacity(user, at=at):
        problems.append(
            Problem(
                "no_capacity",
                _(
                    "Top-ups need full civil capacity: account holders under 18 cannot top up "
                    "unless staff have recorded the own-income exception."
                ),
            )
        )
    if not account.may(Action.TOP_UP):
        problems.append(
            Problem(
                "standing",
                _("This account is %(standing)s and cannot be topped up.")
                % {"standing": account.get_standing_display()},
            )
        )
    version = agreement_in_force(at)
    if version is None:
        problems.append(
            Problem("no_agreement", _("No service agreement is in force; top-ups are paused."))
        )
    elif current_acceptance(user, at) is None:
        problems.append(
            Problem(
                "agreement_not_accepted",
                _("Accept the service agreement in force to top up."),
            )
        )
    if amount is not None:
        problems.extend(amount_problems(amount, currency))
    return problems
