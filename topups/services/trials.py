"""Trial funds (R-TOP-5, R-ACC-4): granted once per identity when staff approve a real-name
verification, and staff changes of a grant's validity; Verification's transition map.

The verification's map is declared here, not in accounts, because approval moves
money (trial funds) and accounts sits below topups: it may not import the apps
above it (see core/workflow.py, "transition maps").
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from accounts import services as accounts_services
from accounts.models import Verification
from billing.services import ledger
from core.workflow import record_setting_change, transition_map
from notices.services import send_notice

from ..models import TrialAward, TrialSettings


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
    # Issue 24 (stated in the agreement): trial funds welcome a customer who may use the
    # paid service; a verified minor without full civil capacity, who may not top up,
    # receives none (no award is recorded, so the identity keeps its one trial)
    if not accounts_services.has_full_capacity(verification.user, at=at):
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
        # keyed by the award, not the identity hash: ledger keys never change, and an
        # identity hash kept there would outlive the key rotation (R-ACC-5)
        idempotency_key=f"trial-award:{award.pk}",
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


def save_trial_settings(trial, *, actor, reason):
    """Staff change the trial settings (R-ADM-5, R-TOP-5): within the configured bounds,
    with a reason, audited with the old and new value of each field."""
    if actor is None or not actor.has_perm("topups.change_trialsettings"):
        raise PermissionDenied(_("You may not change the trial settings."))
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason for the change."), code="reason_required")
    trial.full_clean()
    with transaction.atomic():
        current = TrialSettings.objects.select_for_update().filter(pk=1).first()
        before = (
            {name: getattr(current, name) for name in TrialSettings.AUDITED_FIELDS}
            if current
            else {}
        )
        trial.save()
        record_setting_change(
            trial,
            actor=actor,
            reason=reason,
            before=before,
            after={name: getattr(trial, name) for name in TrialSettings.AUDITED_FIELDS},
        )
    return trial


def change_grant_validity(grant, expires_at, *, actor, reason):
    """Staff extend or shorten a grant's validity (R-TOP-5): audited, the user is told."""
    if actor is None or not actor.has_perm("topups.change_grant_validity"):
        raise PermissionDenied(_("You may not change a grant's validity."))
    if not (reason or "").strip():
        raise ValidationError(_("Give a reason."), code="required")
    now = timezone.now()
    if expires_at <= now:
        raise ValidationError(_("The new expiry must be in the future."), code="past_expiry")
    most = int(getattr(settings, "GRANT_MAX_VALIDITY_DAYS", 730))
    if expires_at > now + timedelta(days=most):
        # R-ADM-5: bounded by a configurable limit
        raise ValidationError(
            f"The new expiry may be at most {most} days ahead (GRANT_MAX_VALIDITY_DAYS).",
            code="expiry_too_far",
        )
    with transaction.atomic():
        # the ledger refuses a grant of the actor's own (R-ADM-4) and audits the change
        locked, old = ledger.set_grant_expiry(grant, expires_at, actor=actor, reason=reason)
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
            dedupe_key=f"grant-validity:{locked.pk}:{now.timestamp():.6f}",
        )
    return locked
