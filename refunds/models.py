"""Refund requests (SPEC §6, agreement §8): the case, its lines per lot, proof files
and every payout attempt.

Money is integer micro-units like the ledger (1 CNY = 1,000,000); refunds are whole
fen (R-LED-3), so every `*_micro` here is whole fen (billing.micro.FEN_MICRO). The
money itself moves only in the ledger (billing.services.refund_holds and ledger); these
rows say why and for whom.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from accounts import proof_files
from billing.micro import MicroMoney
from billing.models import Channel
from core.forms import ReasonForm


class RefundState(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    UNDER_REVIEW = "under_review", _("Under review")
    APPROVED = "approved", _("Approved")
    PAYING = "paying", _("Paying out")
    PAID = "paid", _("Paid out")
    PAYOUT_FAILED = "payout_failed", _("Payout failed")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_STATES = (RefundState.SUBMITTED, RefundState.UNDER_REVIEW)


class AskedVia(models.TextChoices):
    PAGES = "pages", _("User pages")
    EMAIL = "email", _("Email")
    CHAT = "chat", _("Chat")
    PHONE = "phone", _("Phone")


class PayoutState(models.TextChoices):
    PENDING = "pending", _("Awaiting payout")
    SENDING = "sending", _("Sending to the channel")
    UNKNOWN = "unknown", _("Sent, outcome unknown")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Refused by the channel")


def _nobody(refund, user):
    """System-only transitions (the payout task and job): no human actor, no button."""
    return False


def _owner_or_agent(refund, user):
    return user.pk == refund.account.user_id or user.has_perm("refunds.cancel_refundrequest")


class RejectRefundForm(ReasonForm):
    """The reason is sent to the user in the rejection notice."""


def proof_upload_to(instance, filename):
    return proof_files.stored_name("refund-proofs", filename)


class RefundRequest(ConcurrentTransitionMixin, models.Model):
    """One refund request of a balance account (R-REF-1): the whole refundable cash of
    its lots, or a part of it, set aside on submission and paid back per lot."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="refund_requests",
        verbose_name=_("account"),
    )
    # Only transitions write `state` (not protected=True: see topups.models.TopUp).
    state = FSMField(
        default=RefundState.SUBMITTED, choices=RefundState.choices, verbose_name=_("state")
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The user, or the CS agent who filed it on the user's behalf."),
        verbose_name=_("filed by"),
    )
    asked_via = models.CharField(
        max_length=10, choices=AskedVia.choices, default=AskedVia.PAGES, verbose_name=_("asked via")
    )
    user_reason = models.TextField(
        blank=True, help_text=_("Why the user asks (their words)."), verbose_name=_("user reason")
    )
    requested_micro = models.BigIntegerField(
        null=True,
        blank=True,
        help_text=_("A partial amount asked for; empty = all refundable."),
        verbose_name=_("requested"),
    )
    held_micro = models.BigIntegerField(
        default=0, help_text=_("Set aside in refund hold."), verbose_name=_("held")
    )
    arrears_micro = models.BigIntegerField(
        default=0, help_text=_("Arrears settled from it."), verbose_name=_("arrears")
    )
    refunded_micro = models.BigIntegerField(
        default=0, help_text=_("Paid back (set on approval)."), verbose_name=_("refunded")
    )
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=_("created at")
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reviewer"),
    )
    reviewed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("reviewed at"))
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("approver"),
    )
    approved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("approved at"))
    decision_reason = models.TextField(
        blank=True, help_text=_("Told to the user on rejection."), verbose_name=_("decision reason")
    )
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    payout_failure = models.TextField(
        blank=True, help_text=_("The channel's reason."), verbose_name=_("payout failure")
    )

    class Meta:
        verbose_name = _("refund request")
        verbose_name_plural = _("refund requests")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("file_refundrequest", gettext_noop("Can file a refund request on a user's behalf")),
            ("review_refundrequest", gettext_noop("Can take a refund request for review")),
            ("reject_refundrequest", gettext_noop("Can reject a refund request")),
            (
                "cancel_refundrequest",
                gettext_noop("Can cancel a refund request on the user's behalf"),
            ),
            (
                "approve_refundrequest",
                gettext_noop("Can approve a refund request (finance, four eyes)"),
            ),
            (
                "pay_refundrequest",
                gettext_noop("Can pay out a refund: start, record a transfer, retry"),
            ),
            ("view_refund_proof", gettext_noop("Can open refund proof files (each view audited)")),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="refund_queue")]
        constraints = [
            models.CheckConstraint(condition=Q(held_micro__gte=0), name="refund_held_gte0"),
            models.CheckConstraint(condition=Q(arrears_micro__gte=0), name="refund_arrears_gte0"),
            models.CheckConstraint(condition=Q(refunded_micro__gte=0), name="refund_paid_gte0"),
        ]

    def __str__(self):
        return _("Refund request #%(id)s") % {"id": self.pk}

    held = MicroMoney("held_micro")

    arrears = MicroMoney("arrears_micro")

    refunded = MicroMoney("refunded_micro")

    # --- workflow (R-REF-1). Services run these through core.workflow.apply_transition.

    @transition(
        state,
        source=RefundState.SUBMITTED,
        target=RefundState.UNDER_REVIEW,
        permission="refunds.review_refundrequest",
        custom={"label": _("Take for review")},
    )
    def take(self, reviewer=None):
        self.reviewer = reviewer
        self.reviewed_at = timezone.now()

    @transition(
        state,
        source=RefundState.UNDER_REVIEW,
        target=RefundState.APPROVED,
        permission="refunds.approve_refundrequest",
        custom={"label": _("Approve (finance)")},
    )
    def approve(self, approver=None):
        self.approver = approver
        self.approved_at = timezone.now()

    @transition(
        state,
        source=[RefundState.SUBMITTED, RefundState.UNDER_REVIEW],
        target=RefundState.REJECTED,
        permission="refunds.reject_refundrequest",
        custom={"label": _("Reject"), "form": RejectRefundForm},
    )
    def reject(self, decision_reason=""):
        if not decision_reason.strip():
            raise ValidationError("A rejection needs a reason the user can act on.")
        self.decision_reason = decision_reason.strip()
        self.closed_at = timezone.now()

    @transition(
        state,
        source=[RefundState.SUBMITTED, RefundState.UNDER_REVIEW],
        target=RefundState.CANCELLED,
        permission=_owner_or_agent,
        custom={"label": _("Cancel (user's wish)")},
    )
    def cancel(self):
        self.closed_at = timezone.now()

    @transition(
        state,
        source=RefundState.APPROVED,
        target=RefundState.PAYING,
        permission="refunds.pay_refundrequest",
        custom={"label": _("Start payout")},
    )
    def start_payout(self):
        pass

    @transition(
        state,
        source=[RefundState.PAYING, RefundState.PAYOUT_FAILED],
        target=RETURN_VALUE(RefundState.PAYING, RefundState.PAID),
        permission="refunds.pay_refundrequest",
        custom={"label": _("Record bank transfer"), "form": "refunds.forms.TransferForm"},
    )
    def record_transfer(self, all_paid=False):
        if all_paid:
            self.closed_at = timezone.now()
            return RefundState.PAID
        return RefundState.PAYING

    @transition(
        state,
        source=RefundState.PAYOUT_FAILED,
        target=RefundState.PAYING,
        permission="refunds.pay_refundrequest",
        custom={"label": _("Retry payout")},
    )
    def retry_payout(self):
        self.payout_failure = ""

    @transition(
        state,
        source=RefundState.PAYING,
        target=RefundState.PAID,
        permission=_nobody,
        custom={"admin": False, "label": _("Complete")},
    )
    def complete(self):
        self.closed_at = timezone.now()

    @transition(
        state,
        source=RefundState.PAYING,
        target=RefundState.PAYOUT_FAILED,
        permission=_nobody,
        custom={"admin": False, "label": _("Mark payout failed")},
    )
    def fail(self, payout_failure=""):
        self.payout_failure = payout_failure


class RefundLine(models.Model):
    """One lot of a refund request: what was held, what is paid back, and how (R-REF-5).

    `out_request_no` is the Alipay refund request number of this refund and lot, the
    same on every retry; one refund per lot means one refund per Alipay trade, so the
    3-second spacing Alipay asks between two refunds of one trade only concerns retries.
    """

    request = models.ForeignKey(
        RefundRequest, on_delete=models.PROTECT, related_name="lines", verbose_name=_("request")
    )
    lot = models.ForeignKey(
        "billing.Lot", on_delete=models.PROTECT, related_name="refund_lines", verbose_name=_("lot")
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, verbose_name=_("channel"))
    asked_micro = models.BigIntegerField(
        help_text=_("Taken from the lot's cash on submission."), verbose_name=_("asked")
    )
    arrears_micro = models.BigIntegerField(
        default=0, help_text=_("Of which settled arrears."), verbose_name=_("arrears")
    )
    held_micro = models.BigIntegerField(
        default=0, help_text=_("Of which set aside in hold."), verbose_name=_("held")
    )
    discount_used_micro = models.BigIntegerField(
        default=0,
        help_text=_("Discount this lot earned that was used, at submission (R-REF-2)."),
        verbose_name=_("discount used"),
    )
    late_arrears_micro = models.BigIntegerField(
        default=0,
        help_text=_("Arrears run up during the review, settled from the hold."),
        verbose_name=_("late arrears"),
    )
    released_micro = models.BigIntegerField(
        default=0, help_text=_("Returned to the lot's cash."), verbose_name=_("released")
    )
    refunded_micro = models.BigIntegerField(
        default=0, help_text=_("Paid back (on approval)."), verbose_name=_("refunded")
    )
    out_request_no = models.CharField(max_length=64, unique=True, verbose_name=_("out request no"))
    approved = models.BooleanField(
        default=False,
        help_text=_("Set on approval: a lot is refunded once (R-REF-4)."),
        verbose_name=_("approved"),
    )
    payout_state = models.CharField(
        max_length=10,
        choices=PayoutState.choices,
        default=PayoutState.PENDING,
        verbose_name=_("payout state"),
    )
    payout_channel = models.CharField(
        max_length=16,
        choices=Channel.choices,
        blank=True,
        help_text=_("How it was paid."),
        verbose_name=_("payout channel"),
    )
    payout_reference = models.CharField(
        max_length=100, blank=True, verbose_name=_("payout reference")
    )
    paid_on = models.DateField(null=True, blank=True, verbose_name=_("paid on"))
    paid_at = models.DateTimeField(null=True, blank=True, verbose_name=_("paid at"))
    failure_reason = models.TextField(blank=True, verbose_name=_("failure reason"))

    class Meta:
        verbose_name = _("refund line")
        verbose_name_plural = _("refund lines")
        ordering = ["request", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "lot"], name="refundline_one_per_lot"),
            models.UniqueConstraint(
                fields=["lot"], condition=Q(approved=True), name="refundline_lot_refunded_once"
            ),
            models.CheckConstraint(
                condition=Q(asked_micro=models.F("arrears_micro") + models.F("held_micro")),
                name="refundline_asked_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(
                    held_micro__gte=models.F("refunded_micro")
                    + models.F("released_micro")
                    + models.F("late_arrears_micro")
                ),
                name="refundline_refund_within_hold",
            ),
        ]

    def __str__(self):
        return _("Refund line %(number)s") % {"number": self.out_request_no}

    held = MicroMoney("held_micro")

    refunded = MicroMoney("refunded_micro")


class RefundProof(models.Model):
    """A proof file of a request: PDF/JPEG/PNG checked by content, encrypted at rest,
    opened only with `refunds.view_refund_proof`, each view audited (R-ACC-5)."""

    request = models.ForeignKey(
        RefundRequest, on_delete=models.PROTECT, related_name="proofs", verbose_name=_("request")
    )
    file = models.FileField(
        storage=proof_files.storage,
        upload_to=proof_upload_to,
        max_length=200,
        verbose_name=_("file"),
    )
    content_type = models.CharField(max_length=40, verbose_name=_("content type"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    uploaded_at = models.DateTimeField(default=timezone.now, verbose_name=_("uploaded at"))

    class Meta:
        verbose_name = _("refund proof")
        verbose_name_plural = _("refund proofs")
        ordering = ["id"]

    def __str__(self):
        return _("Proof #%(id)s of refund request #%(request)s") % {
            "id": self.pk,
            "request": self.request_id,
        }


class PayoutAttempt(models.Model):
    """One call to the channel about a line: what was sent, what came back, when."""

    request = models.ForeignKey(
        RefundRequest, on_delete=models.PROTECT, related_name="attempts", verbose_name=_("request")
    )
    line = models.ForeignKey(
        RefundLine, on_delete=models.PROTECT, related_name="attempts", verbose_name=_("line")
    )
    operation = models.CharField(
        max_length=10,
        choices=[("refund", "Refund"), ("query", "Query")],
        verbose_name=_("operation"),
    )
    sent = models.JSONField(default=dict, verbose_name=_("sent"))
    outcome = models.CharField(
        max_length=12,
        choices=[
            ("paid", "Money moved"),
            ("unconfirmed", "Accepted, not confirmed"),
            ("refused", "Refused"),
            ("unknown", "Unknown (no answer)"),
        ],
        verbose_name=_("outcome"),
    )
    code = models.CharField(max_length=40, blank=True, verbose_name=_("code"))
    sub_code = models.CharField(max_length=80, blank=True, verbose_name=_("sub code"))
    message = models.TextField(blank=True, verbose_name=_("message"))
    answer = models.JSONField(default=dict, verbose_name=_("answer"))
    at = models.DateTimeField(default=timezone.now, db_index=True, verbose_name=_("at"))

    class Meta:
        verbose_name = _("payout attempt")
        verbose_name_plural = _("payout attempts")
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.operation} {self.outcome} at {self.at:%Y-%m-%d %H:%M:%S}"
