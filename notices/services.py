"""Creating notices. Delivery (email/SMS, retry) is the notices app's Celery work."""

from django.db import IntegrityError, transaction

from .models import Notice


def notify(user, kind, *, subject, body, context=None, dedupe_key=None, channel="email"):
    """Record one notice for an event; idempotent on `dedupe_key`.

    Call it inside the transaction of the event itself, so the notice exists
    exactly when the event does. Returns the notice (the existing one on replay).
    """
    if dedupe_key:
        existing = Notice.objects.filter(dedupe_key=dedupe_key).first()
        if existing:
            return existing
    try:
        with transaction.atomic():
            return Notice.objects.create(
                user=user,
                kind=kind,
                channel=channel,
                subject=subject[:200],
                body=body,
                context=context or {},
                dedupe_key=dedupe_key,
            )
    except IntegrityError:
        if dedupe_key:
            return Notice.objects.get(dedupe_key=dedupe_key)
        raise
