"""Read paths of the accounts area (no N+1: each returns in a bounded number of queries)."""

from django.utils import timezone

from .models import (
    AgreementAcceptance,
    AgreementState,
    AgreementVersion,
    ApiKey,
    Verification,
    VerificationState,
)


def approved_verification(user) -> Verification | None:
    """The user's approved real-name verification, or None (R-ACC-2)."""
    if user is None or not getattr(user, "pk", None):
        return None
    return (
        Verification.objects.filter(user_id=user.pk, state=VerificationState.APPROVED)
        .order_by("-reviewed_at", "-id")
        .first()
    )


def latest_verification(user) -> Verification | None:
    return Verification.objects.filter(user_id=user.pk).order_by("-created_at", "-id").first()


def verifications_of(user):
    return Verification.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def verification_of(user, pk) -> Verification:
    """One of the user's own verifications; another user's id is simply not found."""
    return Verification.objects.get(user_id=user.pk, pk=pk)


def api_keys_of(user):
    return ApiKey.objects.filter(account__user_id=user.pk).order_by("-created_at", "-id")


def agreement_in_force(at=None) -> AgreementVersion | None:
    """The latest published version whose effective date has come at `at` (R-ACC-7)."""
    at = at or timezone.now()
    return (
        AgreementVersion.objects.filter(state=AgreementState.PUBLISHED, effective_at__lte=at)
        .order_by("-effective_at", "-id")
        .first()
    )


def upcoming_agreement(at=None) -> AgreementVersion | None:
    """The next published version announced but not yet in force, if any."""
    at = at or timezone.now()
    return (
        AgreementVersion.objects.filter(state=AgreementState.PUBLISHED, effective_at__gt=at)
        .order_by("effective_at", "id")
        .first()
    )


def current_acceptance(user, at=None) -> AgreementAcceptance | None:
    """The user's acceptance of the version in force at `at`, or None (R-ACC-7)."""
    version = agreement_in_force(at)
    if version is None or user is None or not getattr(user, "pk", None):
        return None
    return (
        AgreementAcceptance.objects.select_related("version")
        .filter(user_id=user.pk, version=version)
        .first()
    )


def acceptances_of(user, versions):
    """{version id: acceptance} for the given versions, one query."""
    ids = [v.pk for v in versions if v is not None]
    return {
        a.version_id: a
        for a in AgreementAcceptance.objects.filter(user_id=user.pk, version_id__in=ids)
    }


def users_with_identity(identity_hash: str) -> list[int]:
    """Ids of users whose verification of this identity was ever approved (R-ACC-4).

    Includes revoked ones: trial funds go to an identity once, so a grant on
    any of these accounts counts for the identity.
    """
    return list(
        Verification.objects.filter(
            identity_hash=identity_hash,
            state__in=[VerificationState.APPROVED, VerificationState.REVOKED],
        )
        .values_list("user_id", flat=True)
        .distinct()
        .order_by("user_id")
    )
