from django.conf import settings
from django.db import models


class NoticeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (will retry)"
    GAVE_UP = "gave_up", "Gave up"
    SKIPPED = "skipped", "Not sent (user opted out)"


class Notice(models.Model):
    """One thing a user must know (R-NOT-1), shown in their pages and delivered by a channel."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notices"
    )
    kind = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=16, default="email")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="One notice per event: send_notice() with a used key returns that notice.",
    )
    status = models.CharField(
        max_length=16, choices=NoticeStatus.choices, default=NoticeStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Counts as the delivery date.")
    read_at = models.DateTimeField(null=True, blank=True)
    # Per-channel marks so a retry never sends a channel twice (email went out, SMS failed).
    email_sent_at = models.DateTimeField(null=True, blank=True)
    sms_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(
                fields=["user"], condition=models.Q(read_at__isnull=True), name="notice_unread"
            ),
        ]

    def __str__(self):
        return f"{self.kind} → {self.user_id}"


class EmailOptOut(models.Model):
    """A user does not want an optional kind by email (required kinds ignore this)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notice_email_opt_outs"
    )
    kind = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="emailoptout_once_per_kind")
        ]

    def __str__(self):
        return f"{self.user_id} opts out of {self.kind} email"
