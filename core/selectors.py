"""Read paths shared by every app."""

from django.contrib.contenttypes.models import ContentType

from .models import AuditRecord


def history_of(obj):
    """The audit records of one case, oldest first (who, when, from, to, why)."""
    content_type = ContentType.objects.get_for_model(obj, for_concrete_model=False)
    return (
        AuditRecord.objects.filter(content_type=content_type, object_id=str(obj.pk))
        .select_related("actor")
        .order_by("at", "id")
    )
