from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class NoticeStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed (will retry)")
    GAVE_UP = "gave_up", _("Gave up")
    SKIPPED = "skipped", _("Not sent (user opted out)")


class Notice(models.Model):
    """One thing a user must know (R-NOT-1), shown in their pages and delivered by a channel."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="notices",
        verbose_name=_("user"),
    )
    kind = models.CharField(max_length=64, db_index=True, verbose_name=_("kind"))
    channel = models.CharField(max_length=16, default="email", verbose_name=_("channel"))
    subject = models.CharField(max_length=200, verbose_name=_("subject"))
    body = models.TextField(verbose_name=_("body"))
    context = models.JSONField(default=dict, blank=True, verbose_name=_("context"))
    dedupe_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text=_("One notice per event: send_notice() with a used key returns that notice."),
        verbose_name=_("dedupe key"),
    )
    status = models.CharField(
        max_length=16,
        choices=NoticeStatus.choices,
        default=NoticeStatus.PENDING,
        verbose_name=_("status"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )
    sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("Counts as the delivery date."),
        verbose_name=_("sent at"),
    )
    read_at = models.DateTimeField(null=True, blank=True, verbose_name=_("read at"))
    # Per-channel marks so a retry never sends a channel twice (email went out, SMS failed).
    email_sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("email sent at"))
    sms_sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sms sent at"))

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(
                fields=["user"], condition=models.Q(read_at__isnull=True), name="notice_unread"
            ),
        ]

    def __str__(self):
        from .kinds import KINDS

        kind = KINDS.get(self.kind)
        label = kind.label if kind is not None else self.kind.replace("_", " ")
        return _("%(kind)s, to user #%(user)s") % {"kind": label, "user": self.user_id}


class EmailOptOut(models.Model):
    """A user does not want an optional kind by email (required kinds ignore this)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notice_email_opt_outs",
        verbose_name=_("user"),
    )
    kind = models.CharField(max_length=64, verbose_name=_("kind"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("email opt out")
        verbose_name_plural = _("email opt outs")
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="emailoptout_once_per_kind")
        ]

    def __str__(self):
        from .kinds import KINDS

        kind = KINDS.get(self.kind)
        label = kind.label if kind is not None else self.kind.replace("_", " ")
        return _("User #%(user)s opts out of “%(kind)s” emails") % {
            "user": self.user_id,
            "kind": label,
        }
