"""Notices: creating them (once per event), rendering per kind and language, delivering them.

Creating: `send_notice(user=, kind=, context=, dedupe_key=)` renders a registered
kind from templates/notices/<kind>/ in the user's language; it is idempotent on
`dedupe_key` and belongs inside the event's own transaction. The apps that raise
an event call it; this app knows none of their models.

Delivering: the `deliver_notices` job claims due notices in batches (row locks
with SKIP LOCKED, then a short claim lease), sends each channel at most once
(per-channel sent marks), and on failure backs off exponentially until it gives
up after NOTICE_MAX_ATTEMPTS. A notice counts as delivered on its send date
(sent_at, §11.3).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template import Context
from django.template.loader import select_template
from django.utils import timezone, translation
from djmoney.money import Money

from core.money import display

from .kinds import KINDS, get_kind, is_required
from .models import EmailOptOut, Notice, NoticeStatus
from .sms import get_sms_backend

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 300  # a claimed notice is retried after this if its worker died mid-send


# --- creating ---------------------------------------------------------------------------------


def _plain_value(value):
    if isinstance(value, Money):
        return str(display(value))
    return value


def jsonable(context: dict) -> dict:
    """The context as stored on the notice: Money as a 2-place string, dates as ISO text."""
    plain = {key: _plain_value(value) for key, value in context.items()}
    return json.loads(json.dumps(plain, cls=DjangoJSONEncoder))


def _template_names(kind, part, language):
    return [f"notices/{kind}/{part}.{language}.txt", f"notices/{kind}/{part}.txt"]


def render_notice(kind: str, context: dict, *, language: str = "en") -> tuple[str, str]:
    """Subject and body of a kind in a language (English when no translation exists)."""
    get_kind(kind)
    values = {key: _plain_value(value) for key, value in context.items()}
    if isinstance(values.get("amount"), Decimal):
        values["amount"] = str(display(values["amount"]))
    with translation.override(language):
        rendered = []
        for part in ("subject", "body"):
            template = select_template(_template_names(kind, part, language))
            # Plain text: no HTML escaping of names or amounts.
            rendered.append(template.template.render(Context(values, autoescape=False)).strip())
    subject = re.sub(r"\s+", " ", rendered[0])[:200]
    return subject, rendered[1] + "\n"


def send_notice(
    *,
    user,
    kind: str,
    context: dict | None = None,
    dedupe_key: str | None = None,
    channel: str = "email",
) -> Notice:
    """Record one notice of a registered kind, rendered in the user's language.

    The one way to raise a notice (R-NOT-1). Call it inside the event's own
    transaction, so the notice exists exactly when the event does; a replay with
    the same `dedupe_key` returns the first notice. An unregistered kind is
    refused (UnknownNoticeKind) and nothing is stored.
    """
    get_kind(kind)
    context = context or {}
    if dedupe_key:
        existing = Notice.objects.filter(dedupe_key=dedupe_key).first()
        if existing:
            return existing
    subject, body = render_notice(kind, context, language=getattr(user, "language", "en"))
    try:
        with transaction.atomic():
            return Notice.objects.create(
                user=user,
                kind=kind,
                channel=channel,
                subject=subject,
                body=body,
                context=jsonable(context),
                dedupe_key=dedupe_key,
            )
    except IntegrityError:
        if dedupe_key:
            return Notice.objects.get(dedupe_key=dedupe_key)
        raise


def send_notices_in_bulk(*, kind: str, context: dict, recipients, dedupe_prefix: str) -> int:
    """The same notice for many users (an announcement to everyone), one insert per batch.

    `recipients` are (user id, language) pairs; the text is rendered once per
    language. Each user's dedupe key is `<dedupe_prefix>:user:<id>`, so a replay
    creates nothing new. Returns how many recipients were given.
    """
    get_kind(kind)
    texts = {}
    rows = []
    for user_id, language in recipients:
        if language not in texts:
            texts[language] = render_notice(kind, context, language=language)
        subject, body = texts[language]
        rows.append(
            Notice(
                user_id=user_id,
                kind=kind,
                subject=subject,
                body=body,
                context=jsonable(context),
                dedupe_key=f"{dedupe_prefix}:user:{user_id}",
            )
        )
    Notice.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- user side --------------------------------------------------------------------------------


def mark_read(user, notice_id) -> Notice:
    """Mark one of the user's own notices read (another user's id is not found)."""
    with transaction.atomic():
        notice = Notice.objects.select_for_update().get(pk=notice_id, user=user)
        if notice.read_at is None:
            notice.read_at = timezone.now()
            notice.save(update_fields=["read_at"])
    return notice


def mark_all_read(user) -> int:
    return Notice.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())


def set_email_preferences(user, wanted_kinds) -> set[str]:
    """Keep email for `wanted_kinds` among the optional kinds; opt out of the rest.

    Required kinds cannot be turned off: they are ignored here either way.
    Unknown kinds are refused (ValueError). Returns the kinds now opted out.
    """
    wanted = set(wanted_kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"Unknown notice kinds: {', '.join(sorted(unknown))}")
    optional = {key for key, kind in KINDS.items() if not kind.required}
    opted_out = optional - wanted
    with transaction.atomic():
        EmailOptOut.objects.filter(user=user).exclude(kind__in=opted_out).delete()
        EmailOptOut.objects.bulk_create(
            [EmailOptOut(user=user, kind=kind) for kind in sorted(opted_out)],
            ignore_conflicts=True,
        )
    return opted_out


# --- delivering -------------------------------------------------------------------------------


def backoff(attempts: int) -> datetime.timedelta:
    """Wait before the next try after `attempts` failed ones: base · 2^(n−1), capped."""
    base = settings.NOTICE_RETRY_BASE_SECONDS
    cap = settings.NOTICE_RETRY_MAX_SECONDS
    return datetime.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def claim_due_notices(now, limit) -> list[int]:
    """Lock up to `limit` due notices (skipping rows another worker holds) and claim them.

    The claim counts the attempt and pushes next_attempt_at past a lease, so the
    rows are not picked again while this worker sends them — nor lost if it dies.
    """
    due = Q(status__in=[NoticeStatus.PENDING, NoticeStatus.FAILED]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    with transaction.atomic():
        ids = list(
            Notice.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Notice.objects.filter(id__in=ids).update(
                attempts=F("attempts") + 1,
                next_attempt_at=now + datetime.timedelta(seconds=CLAIM_SECONDS),
            )
    return ids


def _channels(notice, opted_out: bool):
    kind = KINDS.get(notice.kind)
    if opted_out and not is_required(notice.kind):
        return False, False
    want_email = bool(notice.user.email)
    want_sms = bool(kind and kind.sms and notice.user.phone)
    return want_email, want_sms


# Files an upper app attaches to the email of one kind (an issued invoice's PDF/OFD/XML).
# notices is a leaf: the upper app registers its provider at ready(); nothing here imports it.
_ATTACHMENT_PROVIDERS = {}


def register_attachment_provider(kind, provider):
    """`provider(notice) -> [(filename, bytes, content_type)]`, read when the email is sent."""
    get_kind(kind)
    _ATTACHMENT_PROVIDERS[kind] = provider


# The email body of a kind made when it is sent, for a link that must never be stored in
# the notice staff can read (issue 24: the email verification link); the stored notice
# says the link is in the email. Registered by the upper app at ready().
_BODY_PROVIDERS = {}


def register_body_provider(kind, provider):
    """`provider(notice) -> str`: the email's body, made at sending time."""
    get_kind(kind)
    _BODY_PROVIDERS[kind] = provider


def deliver_notice(notice: Notice, *, now, connection=None, sms_backend=None) -> str:
    """Send one claimed notice on each channel not yet sent; record the outcome."""
    opted_out = EmailOptOut.objects.filter(user_id=notice.user_id, kind=notice.kind).exists()
    want_email, want_sms = _channels(notice, opted_out)
    if not want_email and not want_sms:
        Notice.objects.filter(pk=notice.pk).update(
            status=NoticeStatus.SKIPPED, next_attempt_at=None
        )
        return NoticeStatus.SKIPPED
    errors = []
    sent_times = [t for t in (notice.email_sent_at, notice.sms_sent_at) if t]
    if want_email and notice.email_sent_at is None:
        try:
            make_body = _BODY_PROVIDERS.get(notice.kind)
            message = EmailMessage(
                subject=notice.subject,
                body=make_body(notice) if make_body else notice.body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                # an email change link goes to the new address, its alert to the old one
                to=[(notice.context or {}).get("to_email") or notice.user.email],
                connection=connection,
                headers={"X-Portal-Notice": str(notice.pk)},
            )
            provider = _ATTACHMENT_PROVIDERS.get(notice.kind)
            for name, data, content_type in provider(notice) if provider else []:
                message.attach(name, data, content_type)
            message.send()
        except Exception as exc:
            errors.append(f"email: {type(exc).__name__}: {exc}")
        else:
            # Marked at once: a later SMS failure must not send the email again.
            stamp = timezone.now()
            Notice.objects.filter(pk=notice.pk).update(email_sent_at=stamp)
            sent_times.append(stamp)
    if want_sms and notice.sms_sent_at is None:
        try:
            (sms_backend or get_sms_backend()).send(
                notice.user.phone, f"{notice.subject}\n{notice.body}"[:500]
            )
        except Exception as exc:
            errors.append(f"sms: {type(exc).__name__}: {exc}")
        else:
            stamp = timezone.now()
            Notice.objects.filter(pk=notice.pk).update(sms_sent_at=stamp)
            sent_times.append(stamp)
    if not errors:
        Notice.objects.filter(pk=notice.pk).update(
            status=NoticeStatus.SENT,
            sent_at=min(sent_times),
            next_attempt_at=None,
            last_error="",
        )
        return NoticeStatus.SENT
    gave_up = notice.attempts >= settings.NOTICE_MAX_ATTEMPTS
    Notice.objects.filter(pk=notice.pk).update(
        status=NoticeStatus.GAVE_UP if gave_up else NoticeStatus.FAILED,
        next_attempt_at=None if gave_up else now + backoff(notice.attempts),
        last_error="; ".join(errors)[:2000],
    )
    logger.warning(
        "Notice %s (%s) delivery failed, attempt %s%s",
        notice.pk,
        notice.kind,
        notice.attempts,
        ", giving up" if gave_up else "",
    )
    return NoticeStatus.GAVE_UP if gave_up else NoticeStatus.FAILED


def deliver_due_notices(now, limit) -> int:
    """One batch of the delivery job: claim, then send each; returns notices claimed."""
    ids = claim_due_notices(now, limit)
    if not ids:
        return 0
    connection = get_connection(fail_silently=False)
    sms_backend = get_sms_backend()
    try:
        connection.open()
    except Exception:
        logger.warning("Email connection could not be opened; messages will fail and retry")
    try:
        for notice in Notice.objects.filter(id__in=ids).select_related("user").order_by("id"):
            deliver_notice(notice, now=now, connection=connection, sms_backend=sms_backend)
    finally:
        try:
            connection.close()
        except Exception:
            logger.warning("Email connection did not close cleanly")
    return len(ids)


def retry_now(notice_ids) -> int:
    """Staff: send failed or given-up notices again at the next delivery run."""
    return Notice.objects.filter(
        id__in=list(notice_ids), status__in=[NoticeStatus.FAILED, NoticeStatus.GAVE_UP]
    ).update(status=NoticeStatus.PENDING, next_attempt_at=None, attempts=0)
