"""Agreement versions: publishing and acceptance (R-ACC-7)."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.workflow import apply_transition, transition_map
from notices.services import send_notices_in_bulk

from ..models import (
    AgreementAcceptance,
    AgreementState,
    AgreementVersion,
    User,
)

# ---------------------------------------------------------------- agreements (R-ACC-7)
NOTICE_BATCH = 2000


def _announce_agreement(version, *, batch_size=NOTICE_BATCH):
    """One notice per active user for this version, in bounded batches (§11.3).

    Rendered once per language per batch, then bulk-inserted; the dedupe key
    (version + user) makes a replay create nothing new.
    """
    context = {
        "agreement_version_id": version.pk,
        "version": version.version,
        "title": version.title,
        "effective_at": timezone.localtime(version.effective_at),
    }
    last_id, created = 0, 0
    while True:
        rows = list(
            User.objects.filter(is_active=True, pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "language")[:batch_size]
        )
        if not rows:
            return created
        created += send_notices_in_bulk(
            kind="agreement_published",
            context=context,
            recipients=rows,
            dedupe_prefix=f"agreement:{version.pk}",
        )
        last_id = rows[-1][0]


def publish_agreement(version, *, actor=None, reason=""):
    """Publish a version with an effective date in the future; notify every user (R-ACC-7)."""
    if version.effective_at is None or version.effective_at <= timezone.now():
        raise ValidationError(
            _("The effective date must be in the future: users are told in advance."),
            code="effective_in_past",
        )
    with transaction.atomic():
        version = apply_transition(
            version, "publish", actor=actor, reason=reason or "published", publisher=actor
        )
        _announce_agreement(version)
    return version


transition_map(AgreementVersion, {"publish": publish_agreement})


def accept_agreement(user, version, *, ip: str) -> AgreementAcceptance:
    """Record the user's acceptance of a published version in force or announced (R-ACC-7).

    Idempotent: accepting the same version again returns the first acceptance.
    """
    from ..selectors import agreement_in_force

    if version.state != AgreementState.PUBLISHED:
        raise ValidationError(_("This agreement version is not published."), code="not_published")
    in_force = agreement_in_force()
    if in_force is not None and version.effective_at < in_force.effective_at:
        raise ValidationError(
            _("This agreement version has been replaced by a newer one."), code="superseded"
        )
    with transaction.atomic():
        acceptance, _created = AgreementAcceptance.objects.get_or_create(
            user=user,
            version=version,
            defaults={"ip": ip or None, "accepted_at": timezone.now()},
        )
    return acceptance
