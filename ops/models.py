from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from django_fsm import FSMField, transition


class JobRunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    OK = "ok", _("OK")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped (another run holds the lease)")


class TriggeredBy(models.TextChoices):
    BEAT = "beat", _("Schedule (beat)")
    MANUAL = "manual", _("By hand (admin)")
    COMMAND = "command", _("By hand (manage.py)")


class JobRun(models.Model):
    """One run of a scheduled job: the ops log staff read in admin."""

    job = models.CharField(max_length=100, db_index=True, verbose_name=_("job"))
    status = models.CharField(
        max_length=16,
        choices=JobRunStatus.choices,
        default=JobRunStatus.RUNNING,
        verbose_name=_("status"),
    )
    triggered_by = models.CharField(
        max_length=16, choices=TriggeredBy.choices, verbose_name=_("triggered by")
    )
    triggered_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("triggered by user"),
    )
    clock = models.DateTimeField(
        help_text=_("The 'now' the job's rules were applied with."), verbose_name=_("clock")
    )
    started_at = models.DateTimeField(db_index=True, verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    rows_touched = models.PositiveBigIntegerField(default=0, verbose_name=_("rows touched"))
    batches = models.PositiveIntegerField(default=0, verbose_name=_("batches"))
    error = models.TextField(blank=True, verbose_name=_("error"))

    class Meta:
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["job", "-started_at"])]
        permissions = [("run_job", gettext_noop("Can run a scheduled job by hand"))]

    def __str__(self):
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M:%S} {self.get_status_display()}"

    @property
    def duration(self):
        if self.finished_at:
            return self.finished_at - self.started_at
        return None


class JobLease(models.Model):
    """At most one run of a job at a time, across workers (a row per job name).

    Taken with a conditional UPDATE (works on PostgreSQL and SQLite alike), short
    (ops.services.LEASE_SECONDS) and renewed by a heartbeat thread while the run works;
    a worker that dies leaves a lease that runs out within a minute, or is taken over at
    once when its holder (host:pid) is a process of this host that no longer exists. The
    taker closes the dead worker's JobRun as failed and alerts staff.
    """

    job = models.CharField(max_length=100, primary_key=True, verbose_name=_("job"))
    holder = models.CharField(max_length=64, blank=True, verbose_name=_("holder"))
    held_until = models.DateTimeField(null=True, blank=True, verbose_name=_("held until"))

    def __str__(self):
        return f"{self.job} held until {self.held_until}" if self.held_until else self.job


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")


class StaffAlert(models.Model):
    """Something staff must look at (ledger drift, a failing job). Never auto-resolved."""

    kind = models.CharField(max_length=64, db_index=True, verbose_name=_("kind"))
    key = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("Alerts with the same key are folded into one open alert."),
        verbose_name=_("key"),
    )
    message = models.TextField(verbose_name=_("message"))
    details = models.JSONField(default=dict, blank=True, verbose_name=_("details"))
    status = FSMField(
        max_length=16,
        choices=AlertStatus.choices,
        default=AlertStatus.OPEN,
        verbose_name=_("status"),
    )
    occurrences = models.PositiveIntegerField(default=1, verbose_name=_("occurrences"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )
    last_seen_at = models.DateTimeField(auto_now_add=True, verbose_name=_("last seen at"))
    acknowledged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("acknowledged at"))
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )

    class Meta:
        verbose_name = _("staff alert")
        verbose_name_plural = _("staff alerts")
        ordering = ["-created_at", "-id"]
        permissions = [("acknowledge_staffalert", gettext_noop("Can acknowledge a staff alert"))]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(status="open") & ~models.Q(key=""),
                name="staffalert_one_open_per_key",
            )
        ]

    def __str__(self):
        return f"[{self.kind}] {self.message[:60]}"

    @transition(
        status,
        source=AlertStatus.OPEN,
        target=AlertStatus.ACKNOWLEDGED,
        permission="ops.acknowledge_staffalert",
        custom={"label": _("Acknowledge")},
    )
    def acknowledge(self, by=None):
        from django.utils import timezone

        self.acknowledged_at = timezone.now()
        self.acknowledged_by = by if getattr(by, "pk", None) else None
