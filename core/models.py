from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditRecord(models.Model):
    """Who did what to which case, when, from which state to which, and why (R-ADM-2).

    Written by core.workflow for every transition and by services for every
    manual money movement or sensitive read. Never edited.
    """

    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, verbose_name=_("content type")
    )
    object_id = models.CharField(max_length=64, verbose_name=_("object id"))
    subject = GenericForeignKey("content_type", "object_id")
    action = models.CharField(max_length=64, verbose_name=_("action"))
    from_state = models.CharField(max_length=32, blank=True, verbose_name=_("from state"))
    to_state = models.CharField(max_length=32, blank=True, verbose_name=_("to state"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("Empty when the system (a scheduled job) acted."),
        verbose_name=_("actor"),
    )
    reason = models.TextField(blank=True, verbose_name=_("reason"))
    details = models.JSONField(default=dict, blank=True, verbose_name=_("details"))
    at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("at"))

    class Meta:
        verbose_name = _("audit record")
        verbose_name_plural = _("audit records")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id", "-at"])]

    def __str__(self):
        from .history import action_label, state_label

        model = self.content_type.model_class()
        who = self.actor or _("the system")
        return _("%(action)s: %(before)s → %(after)s, by %(who)s") % {
            "action": action_label(model, self.action),
            "before": state_label(model, self.from_state),
            "after": state_label(model, self.to_state),
            "who": who,
        }
