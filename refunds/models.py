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
    PAGES = "pages", "User pages"
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat"
    PHONE = "phone", "Phone"


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
        "accounts.BalanceAccount", on_delete=models.PROTECT, related_name="refund_requests"
    )
    # Only transitions write `state` (not protected=True: see topups.models.TopUp).
    state = FSMField(default=RefundState.SUBMITTED, choices=RefundState.choices)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The user, or the CS agent who filed it on the user's behalf.",
    )
    asked_via = models.CharField(max_length=10, choices=AskedVia.choices, default=AskedVia.PAGES)
    user_reason = models.TextField(blank=True, help_text="Why the user asks (their words).")
    requested_micro = models.BigIntegerField(
        null=True, blank=True, help_text="A partial amount asked for; empty = all refundable."
    )
    held_micro = models.BigIntegerField(default=0, help_text="Set aside in refund hold.")
    arrears_micro = models.BigIntegerField(default=0, help_text="Arrears settled from it.")
    refunded_micro = models.BigIntegerField(default=0, help_text="Paid back (set on approval).")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True, help_text="Told to the user on rejection.")
    closed_at = models.DateTimeField(null=True, blank=True)
    payout_failure = models.TextField(blank=True, help_text="The channel's reason.")

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("file_refundrequest", "Can file a refund request on a user's behalf"),
            ("review_refundrequest", "Can take a refund request for review"),
            ("reject_refundrequest", "Can reject a refund request"),
            ("cancel_refundrequest", "Can cancel a refund request on the user's behalf"),
            ("approve_refundrequest", "Can approve a refund request (finance, four eyes)"),
            ("pay_refundrequest", "Can pay out a refund: start, record a transfer, retry"),
            ("view_refund_proof", "Can open refund proof files (each view audited)"),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="refund_queue")]
        constraints = [
            models.CheckConstraint(condition=Q(held_micro__gte=0), name="refund_held_gte0"),
            models.CheckConstraint(condition=Q(arrears_micro__gte=0), name="refund_arrears_gte0"),
            models.CheckConstraint(condition=Q(refunded_micro__gte=0), name="refund_paid_gte0"),
        ]

    def __str__(self):
        return f"Refund request #{self.pk}"

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
        custom={"admin": False},
    )
    def complete(self):
        self.closed_at = timezone.now()

    @transition(
        state,
        source=RefundState.PAYING,
        target=RefundState.PAYOUT_FAILED,
        permission=_nobody,
        custom={"admin": False},
    )
    def fail(self, payout_failure=""):
        self.payout_failure = payout_failure


class RefundLine(models.Model):
    """One lot of a refund request: what was held, what is paid back, and how (R-REF-5).

    `out_request_no` is the Alipay refund request number of this refund and lot, the
    same on every retry; one refund per lot means one refund per Alipay trade, so the
    3-second spacing Alipay asks between two refunds of one trade only concerns retries.
    """

    request = models.ForeignKey(RefundRequest, on_delete=models.PROTECT, related_name="lines")
    lot = models.ForeignKey("billing.Lot", on_delete=models.PROTECT, related_name="refund_lines")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    asked_micro = models.BigIntegerField(help_text="Taken from the lot's cash on submission.")
    arrears_micro = models.BigIntegerField(default=0, help_text="Of which settled arrears.")
    held_micro = models.BigIntegerField(default=0, help_text="Of which set aside in hold.")
    discount_used_micro = models.BigIntegerField(
        default=0, help_text="Discount this lot earned that was used, at submission (R-REF-2)."
    )
    late_arrears_micro = models.BigIntegerField(
        default=0, help_text="Arrears run up during the review, settled from the hold."
    )
    released_micro = models.BigIntegerField(default=0, help_text="Returned to the lot's cash.")
    refunded_micro = models.BigIntegerField(default=0, help_text="Paid back (on approval).")
    out_request_no = models.CharField(max_length=64, unique=True)
    approved = models.BooleanField(
        default=False, help_text="Set on approval: a lot is refunded once (R-REF-4)."
    )
    payout_state = models.CharField(
        max_length=10, choices=PayoutState.choices, default=PayoutState.PENDING
    )
    payout_channel = models.CharField(
        max_length=16, choices=Channel.choices, blank=True, help_text="How it was paid."
    )
    payout_reference = models.CharField(max_length=100, blank=True)
    paid_on = models.DateField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)

    class Meta:
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
        return f"Refund line {self.out_request_no}"

    held = MicroMoney("held_micro")

    refunded = MicroMoney("refunded_micro")


class RefundProof(models.Model):
    """A proof file of a request: PDF/JPEG/PNG checked by content, encrypted at rest,
    opened only with `refunds.view_refund_proof`, each view audited (R-ACC-5)."""

    request = models.ForeignKey(RefundRequest, on_delete=models.PROTECT, related_name="proofs")
    file = models.FileField(storage=proof_files.storage, upload_to=proof_upload_to, max_length=200)
    content_type = models.CharField(max_length=40)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Proof #{self.pk} of refund request #{self.request_id}"


class PayoutAttempt(models.Model):
    """One call to the channel about a line: what was sent, what came back, when."""

    request = models.ForeignKey(RefundRequest, on_delete=models.PROTECT, related_name="attempts")
    line = models.ForeignKey(RefundLine, on_delete=models.PROTECT, related_name="attempts")
    operation = models.CharField(max_length=10, choices=[("refund", "Refund"), ("query", "Query")])
    sent = models.JSONField(default=dict)
    outcome = models.CharField(
        max_length=12,
        choices=[
            ("paid", "Money moved"),
            ("unconfirmed", "Accepted, not confirmed"),
            ("refused", "Refused"),
            ("unknown", "Unknown (no answer)"),
        ],
    )
    code = models.CharField(max_length=40, blank=True)
    sub_code = models.CharField(max_length=80, blank=True)
    message = models.TextField(blank=True)
    answer = models.JSONField(default=dict)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.operation} {self.outcome} at {self.at:%Y-%m-%d %H:%M:%S}"
