"""Read paths for the notice pages (fixed query counts)."""

from django.db.models import CharField, Exists, Value
from django.db.models.functions import Cast, Concat

from .kinds import KINDS
from .models import EmailOptOut, Notice


def notices_for(user):
    return Notice.objects.filter(user=user).only(
        "id", "kind", "subject", "body", "created_at", "sent_at", "read_at", "status"
    )


def unread_count(user) -> int:
    return Notice.objects.filter(user=user, read_at__isnull=True).count()


def email_preferences(user):
    """Every kind with whether the user gets it by email and whether that can change."""
    opted_out = set(EmailOptOut.objects.filter(user=user).values_list("kind", flat=True))
    return [
        {
            "kind": kind.key,
            "label": kind.label,
            "required": kind.required,
            "email": kind.required or kind.key not in opted_out,
        }
        for kind in KINDS.values()
    ]


def not_yet_notified(prefix: str, key_of):
    """A filter for another app's rows that have no notice with dedupe key
    `<prefix><key_of>` yet (`key_of` is an expression over the outer row, usually
    its primary key). Lets a reminder job pick only what it has not announced."""
    key = Concat(Value(prefix), Cast(key_of, CharField()), output_field=CharField())
    return ~Exists(Notice.objects.filter(dedupe_key=key))
