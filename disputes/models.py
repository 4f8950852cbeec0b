"""Third-party top-up disputes (SPEC §7, R-DIS-1 … R-DIS-5; agreement §5.2).

A dispute is opened by CS when a third party reports that paid top-ups reached this
balance without the rights holder's consent. It locks the account and its API keys,
waits 30 days for evidence of consent, and at the deadline pays the disputed amount
back to the rights holder from the balance's cash; a shortfall is a debt that later
top-ups pay first. Money is integer micro-units like the ledger (whole fen here);
it moves only through billing.services.dispute_funds and billing.services.ledger.
"""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from accounts import proof_files
from accounts.crypto import EncryptedTextField
from billing.micro import MicroMoney, from_micro
from billing.models import Channel
from core.forms import ReasonForm


class DisputeState(models.TextChoices):
    OPEN = "open", _("Open: awaiting evidence")
    CLEARED = "cleared", _("Cleared")
    IN_DEBT = "in_debt", _("Refunded, debt outstanding")
    ESCALATED = "escalated", _("Debt overdue (escalated)")
    SETTLED = "settled", _("Refunded and settled")


# A dispute in these states holds the account and the keys it locked (R-DIS-5).
HOLDING_STATES = (DisputeState.OPEN, DisputeState.IN_DEBT, DisputeState.ESCALATED)
DEBT_STATES = (DisputeState.IN_DEBT, DisputeState.ESCALATED)


class ReportedVia(models.TextChoices):
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("Email")
    LETTER = "letter", _("Letter")
    CHANNEL = "channel", _("Payment channel (chargeback / complaint)")
    OTHER = "other", _("Other")


class DebtEnd(models.TextChoices):
    PAID = "paid", _("Paid by later top-ups")
    WAIVED = "waived", _("Waived by the rights holder")
    REPAID_DIRECTLY = "repaid_directly", _("Repaid to the rights holder directly")


def _nobody(dispute, user):
    """System-only transitions (the deadline job, collections): no human, no button."""
    return False


class RejectEvidenceForm(ReasonForm):
    """The reason is sent to the user; the dispute stays open with its deadline."""


class DebtEndForm(ReasonForm):
    """Recorded by CS with the proof file already attached to the dispute."""


def document_upload_to(instance, filename):
    return proof_files.stored_name("dispute-files", filename)


class Dispute(ConcurrentTransitionMixin, models.Model):
    """One third-party dispute of a balance account over one or more of its top-ups."""

    account = models.ForeignKey(
        "accounts.BalanceAccount", on_delete=models.PROTECT, related_name="disputes"
    )
    state = FSMField(default=DisputeState.OPEN, choices=DisputeState.choices)
    # the report
    reported_by = models.CharField(max_length=200, help_text="Who reported it (person, body).")
    reported_via = models.CharField(max_length=10, choices=ReportedVia.choices)
    report_details = models.TextField(blank=True)
    rights_holder_name = EncryptedTextField()
    rights_holder_contact = EncryptedTextField(blank=True)
    payer_account = EncryptedTextField(blank=True, help_text="The payer account the channel shows.")
    disputed_micro = models.BigIntegerField(help_text="Disputed amount, whole fen.")
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    deadline_at = models.DateTimeField(db_index=True)
    # the locks it holds (R-DIS-1): whether it wants the account locked, which keys it locked
    holds_account = models.BooleanField(default=True)
    locked_key_ids = models.JSONField(default=list, blank=True)
    # evidence review
    evidence_rejection = models.TextField(blank=True, help_text="Last rejection, told to the user.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # the deadline's money (R-DIS-3)
    refunded_micro = models.BigIntegerField(default=0, help_text="Refunded from cash.")
    refund_txn_id = models.BigIntegerField(null=True, blank=True)
    debt_micro = models.BigIntegerField(default=0, help_text="Shortfall made a debt.")
    debt_paid_micro = models.BigIntegerField(default=0, help_text="Collected from top-ups.")
    debt_ended_micro = models.BigIntegerField(default=0, help_text="Waived / repaid directly.")
    debt_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    debt_end = models.CharField(max_length=16, choices=DebtEnd.choices, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, help_text="Why it ended, as told to the user.")

    class Meta:
        ordering = ["deadline_at", "id"]
        permissions = [
            ("open_dispute", "Can open a third-party dispute (locks the account)"),
            ("review_dispute_evidence", "Can accept or reject a dispute's evidence"),
            ("record_dispute_withdrawal", "Can record that the rights holder withdrew"),
            ("end_dispute_debt", "Can record a debt waived or repaid directly (with proof)"),
            ("pay_dispute", "Can record a bank payout to a rights holder"),
            ("view_dispute_file", "Can open dispute evidence and proof files (audited)"),
        ]
        indexes = [models.Index(fields=["state", "deadline_at"], name="dispute_queue")]
        constraints = [
            models.CheckConstraint(condition=Q(disputed_micro__gt=0), name="dispute_amount_gt0"),
            models.CheckConstraint(
                condition=Q(
                    disputed_micro__gte=models.F("refunded_micro") + models.F("debt_micro")
                ),
                name="dispute_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(
                    debt_micro__gte=models.F("debt_paid_micro") + models.F("debt_ended_micro")
                ),
                name="dispute_debt_within_debt",
            ),
        ]

    def __str__(self):
        return f"Dispute #{self.pk}"

    disputed = MicroMoney("disputed_micro")

    refunded = MicroMoney("refunded_micro")

    debt = MicroMoney("debt_micro")

    @property
    def debt_left_micro(self):
        return self.debt_micro - self.debt_paid_micro - self.debt_ended_micro

    debt_left = MicroMoney("debt_left_micro")

    @property
    def is_holding(self):
        return self.state in HOLDING_STATES

    def days_left(self, now=None):
        """Whole days until the deadline (open) or the debt's due date; None otherwise."""
        now = now or timezone.now()
        end = (
            self.deadline_at
            if self.state == DisputeState.OPEN
            else self.debt_due_at
            if self.state in DEBT_STATES
            else None
        )
        if end is None:
            return None
        return max(0, (end - now).days)

    # --- workflow. Services run these through core.workflow.apply_transition.

    @transition(
        state,
        source=DisputeState.OPEN,
        target=DisputeState.CLEARED,
        permission="disputes.review_dispute_evidence",
        custom={"label": _("Accept evidence (clear)")},
    )
    def accept_evidence(self, decided_by=None):
        self.decided_by = decided_by
        self.closed_at = timezone.now()
        self.outcome = "evidence accepted"

    @transition(
        state,
        source=DisputeState.OPEN,
        target=DisputeState.OPEN,
        permission="disputes.review_dispute_evidence",
        custom={"label": _("Reject evidence"), "form": RejectEvidenceForm},
    )
    def reject_evidence(self, decided_by=None, evidence_rejection=""):
        if not evidence_rejection.strip():
            raise ValidationError("A rejection needs a reason the user can act on.")
        self.decided_by = decided_by
        self.evidence_rejection = evidence_rejection.strip()

    @transition(
        state,
        source=DisputeState.OPEN,
        target=DisputeState.CLEARED,
        permission="disputes.record_dispute_withdrawal",
        custom={"label": _("Rights holder withdrew the claim")},
    )
    def withdraw(self, decided_by=None):
        self.decided_by = decided_by
        self.closed_at = timezone.now()
        self.outcome = "claim withdrawn"

    @transition(
        state,
        source=DisputeState.OPEN,
        target=RETURN_VALUE(DisputeState.SETTLED, DisputeState.IN_DEBT),
        permission=_nobody,
        custom={"admin": False},
    )
    def refund_at_deadline(self, refunded_micro=0, debt_micro=0, debt_due_at=None, txn_id=None):
        self.refunded_micro = refunded_micro
        self.debt_micro = debt_micro
        self.refund_txn_id = txn_id
        if debt_micro:
            self.debt_due_at = debt_due_at
            return DisputeState.IN_DEBT
        self.closed_at = timezone.now()
        self.outcome = "refunded at the deadline"
        return DisputeState.SETTLED

    @transition(
        state,
        source=DisputeState.IN_DEBT,
        target=DisputeState.ESCALATED,
        permission=_nobody,
        custom={"admin": False},
    )
    def escalate(self):
        self.escalated_at = timezone.now()

    @transition(
        state,
        source=list(DEBT_STATES),
        target=DisputeState.SETTLED,
        permission=_nobody,
        custom={"admin": False},
    )
    def debt_paid(self):
        self.debt_end = DebtEnd.PAID
        self.closed_at = timezone.now()
        self.outcome = "debt paid"

    @transition(
        state,
        source=list(DEBT_STATES),
        target=DisputeState.SETTLED,
        permission="disputes.end_dispute_debt",
        custom={
            "label": _("Debt waived by the rights holder (proof attached)"),
            "form": DebtEndForm,
        },
    )
    def waive_debt(self, ended_micro=0):
        self._end_debt(ended_micro, DebtEnd.WAIVED, "debt waived by the rights holder")

    @transition(
        state,
        source=list(DEBT_STATES),
        target=DisputeState.SETTLED,
        permission="disputes.end_dispute_debt",
        custom={
            "label": _("Debt repaid to the rights holder directly (proof)"),
            "form": DebtEndForm,
        },
    )
    def record_direct_repayment(self, ended_micro=0):
        self._end_debt(
            ended_micro, DebtEnd.REPAID_DIRECTLY, "debt repaid to the rights holder directly"
        )

    def _end_debt(self, ended_micro, how, outcome):
        self.debt_ended_micro += ended_micro
        self.debt_end = how
        self.closed_at = timezone.now()
        self.outcome = outcome


class DisputeDebt(Dispute):
    """The debt queue in admin: disputes with a debt outstanding or escalated."""

    class Meta:
        proxy = True
        verbose_name = "dispute debt"
        ordering = ["debt_due_at", "id"]


class DisputedTopUp(models.Model):
    """One disputed top-up of a dispute and its share of the disputed amount."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="topups")
    topup = models.ForeignKey("topups.TopUp", on_delete=models.PROTECT, related_name="+")
    lot = models.ForeignKey("billing.Lot", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    amount_micro = models.BigIntegerField(help_text="Its share of the disputed amount.")

    class Meta:
        ordering = ["dispute", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dispute", "topup"], name="disputedtopup_once"),
        ]

    def __str__(self):
        return f"Top-up {self.topup_id} in dispute #{self.dispute_id}"

    amount = MicroMoney("amount_micro")


class FileKind(models.TextChoices):
    EVIDENCE = "evidence", _("Evidence of consent")
    DEBT_PROOF = "debt_proof", _("Proof of a waiver or direct repayment")


class DisputeFile(models.Model):
    """Evidence of consent (the user) or proof that a debt ended (CS): PDF/JPEG/PNG by
    content, encrypted at rest, opened only with `disputes.view_dispute_file`, audited."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="files")
    kind = models.CharField(max_length=12, choices=FileKind.choices)
    file = models.FileField(
        storage=proof_files.storage, upload_to=document_upload_to, max_length=200
    )
    content_type = models.CharField(max_length=40)
    note = models.CharField(max_length=500, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} of dispute #{self.dispute_id}"


class PayoutState(models.TextChoices):
    PENDING = "pending", _("Awaiting bank transfer by finance")
    SENDING = "sending", _("Sending to Alipay")
    UNKNOWN = "unknown", _("Sent, outcome unknown")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Refused by the channel")


class TransferForm(ReasonForm):
    bank_reference = forms.CharField(max_length=100, help_text="The transfer's bank reference.")
    transferred_on = forms.DateField(help_text="The day the money left (YYYY-MM-DD).")


class RightsHolderPayout(ConcurrentTransitionMixin, models.Model):
    """Money passed on to the rights holder: the deadline refund, or what a top-up paid of
    the debt. Through the disputed trade's channel: an Alipay refund of that trade with
    this row's own `out_request_no` (the same on every retry), or a bank transfer finance
    records. Paid once: the ledger move is keyed on the out_request_no."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="payouts")
    disputed_topup = models.ForeignKey(
        DisputedTopUp, on_delete=models.PROTECT, related_name="payouts"
    )
    source = models.CharField(
        max_length=64, unique=True, help_text="What it pays: the deadline, or a top-up's txn."
    )
    amount_micro = models.BigIntegerField()
    channel = models.CharField(max_length=16, choices=Channel.choices)
    out_request_no = models.CharField(max_length=64, unique=True)
    # system moves (Alipay answers) are plain updates; staff move it only by transition
    state = FSMField(max_length=10, choices=PayoutState.choices, default=PayoutState.PENDING)
    reference = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_answer = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_call_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_on = models.DateField(null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_micro__gt=0), name="rhpayout_amount_gt0"),
        ]

    def __str__(self):
        return f"Payout {self.out_request_no}"

    amount = MicroMoney("amount_micro")

    @transition(
        state,
        source=[PayoutState.PENDING, PayoutState.FAILED],
        target=PayoutState.PAID,
        permission="disputes.pay_dispute",
        custom={"label": _("Record bank transfer"), "form": TransferForm},
    )
    def record_transfer(self, bank_reference="", transferred_on=None, paid_by=None):
        self.reference = bank_reference.strip()[:100]
        self.paid_on = transferred_on
        self.paid_by = paid_by
        self.paid_at = timezone.now()


class DebtCollection(models.Model):
    """What one top-up paid of a dispute's debt (credit_lot, after arrears): once per
    dispute and ledger transaction."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="collections")
    txn_id = models.BigIntegerField()
    amount_micro = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dispute", "txn_id"], name="debtcollection_once"),
        ]

    def __str__(self):
        return f"{from_micro(self.amount_micro)} collected for dispute #{self.dispute_id}"
