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
from django.utils.translation import gettext_noop
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
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="disputes",
        verbose_name=_("account"),
    )
    state = FSMField(
        default=DisputeState.OPEN, choices=DisputeState.choices, verbose_name=_("state")
    )
    # the report
    reported_by = models.CharField(
        max_length=200,
        help_text=_("Who reported it (person, body)."),
        verbose_name=_("reported by"),
    )
    reported_via = models.CharField(
        max_length=10, choices=ReportedVia.choices, verbose_name=_("reported via")
    )
    report_details = models.TextField(blank=True, verbose_name=_("report details"))
    rights_holder_name = EncryptedTextField(verbose_name=_("rights holder name"))
    rights_holder_contact = EncryptedTextField(blank=True, verbose_name=_("rights holder contact"))
    payer_account = EncryptedTextField(
        blank=True,
        help_text=_("The payer account the channel shows."),
        verbose_name=_("payer account"),
    )
    disputed_micro = models.BigIntegerField(
        help_text=_("Disputed amount, whole fen."), verbose_name=_("disputed")
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("opened by"),
    )
    opened_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=_("opened at")
    )
    deadline_at = models.DateTimeField(db_index=True, verbose_name=_("deadline at"))
    # the locks it holds (R-DIS-1): whether it wants the account locked, which keys it locked
    holds_account = models.BooleanField(default=True, verbose_name=_("holds account"))
    locked_key_ids = models.JSONField(default=list, blank=True, verbose_name=_("locked key ids"))
    # evidence review
    evidence_rejection = models.TextField(
        blank=True,
        help_text=_("Last rejection, told to the user."),
        verbose_name=_("evidence rejection"),
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("decided by"),
    )
    # the deadline's money (R-DIS-3)
    refunded_micro = models.BigIntegerField(
        default=0, help_text=_("Refunded from cash."), verbose_name=_("refunded")
    )
    refund_txn_id = models.BigIntegerField(null=True, blank=True, verbose_name=_("refund txn id"))
    debt_micro = models.BigIntegerField(
        default=0, help_text=_("Shortfall made a debt."), verbose_name=_("debt")
    )
    debt_paid_micro = models.BigIntegerField(
        default=0, help_text=_("Collected from top-ups."), verbose_name=_("debt paid")
    )
    debt_ended_micro = models.BigIntegerField(
        default=0, help_text=_("Waived / repaid directly."), verbose_name=_("debt ended")
    )
    debt_due_at = models.DateTimeField(
        null=True, blank=True, db_index=True, verbose_name=_("debt due at")
    )
    debt_end = models.CharField(
        max_length=16, choices=DebtEnd.choices, blank=True, verbose_name=_("debt end")
    )
    escalated_at = models.DateTimeField(null=True, blank=True, verbose_name=_("escalated at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    outcome = models.TextField(
        blank=True, help_text=_("Why it ended, as told to the user."), verbose_name=_("outcome")
    )

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["deadline_at", "id"]
        permissions = [
            ("open_dispute", gettext_noop("Can open a third-party dispute (locks the account)")),
            ("review_dispute_evidence", gettext_noop("Can accept or reject a dispute's evidence")),
            (
                "record_dispute_withdrawal",
                gettext_noop("Can record that the rights holder withdrew"),
            ),
            (
                "end_dispute_debt",
                gettext_noop("Can record a debt waived or repaid directly (with proof)"),
            ),
            ("pay_dispute", gettext_noop("Can record a bank payout to a rights holder")),
            (
                "view_dispute_file",
                gettext_noop("Can open dispute evidence and proof files (audited)"),
            ),
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
        return _("Dispute #%(id)s") % {"id": self.pk}

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
        custom={"admin": False, "label": _("Refund at the deadline")},
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
        custom={"admin": False, "label": _("Escalate")},
    )
    def escalate(self):
        self.escalated_at = timezone.now()

    @transition(
        state,
        source=list(DEBT_STATES),
        target=DisputeState.SETTLED,
        permission=_nobody,
        custom={"admin": False, "label": _("Debt paid")},
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
        verbose_name = _("dispute debt")
        ordering = ["debt_due_at", "id"]


class DisputedTopUp(models.Model):
    """One disputed top-up of a dispute and its share of the disputed amount."""

    dispute = models.ForeignKey(
        Dispute, on_delete=models.PROTECT, related_name="topups", verbose_name=_("dispute")
    )
    topup = models.ForeignKey(
        "topups.TopUp", on_delete=models.PROTECT, related_name="+", verbose_name=_("topup")
    )
    lot = models.ForeignKey(
        "billing.Lot", on_delete=models.PROTECT, related_name="+", verbose_name=_("lot")
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, verbose_name=_("channel"))
    amount_micro = models.BigIntegerField(
        help_text=_("Its share of the disputed amount."), verbose_name=_("amount")
    )

    class Meta:
        verbose_name = _("disputed top up")
        verbose_name_plural = _("disputed top ups")
        ordering = ["dispute", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dispute", "topup"], name="disputedtopup_once"),
        ]

    def __str__(self):
        return _("Top-up #%(topup)s in dispute #%(dispute)s") % {
            "topup": self.topup_id,
            "dispute": self.dispute_id,
        }

    amount = MicroMoney("amount_micro")


class FileKind(models.TextChoices):
    EVIDENCE = "evidence", _("Evidence of consent")
    DEBT_PROOF = "debt_proof", _("Proof of a waiver or direct repayment")


class DisputeFile(models.Model):
    """Evidence of consent (the user) or proof that a debt ended (CS): PDF/JPEG/PNG by
    content, encrypted at rest, opened only with `disputes.view_dispute_file`, audited."""

    dispute = models.ForeignKey(
        Dispute, on_delete=models.PROTECT, related_name="files", verbose_name=_("dispute")
    )
    kind = models.CharField(max_length=12, choices=FileKind.choices, verbose_name=_("kind"))
    file = models.FileField(
        storage=proof_files.storage,
        upload_to=document_upload_to,
        max_length=200,
        verbose_name=_("file"),
    )
    content_type = models.CharField(max_length=40, verbose_name=_("content type"))
    note = models.CharField(max_length=500, blank=True, verbose_name=_("note"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    uploaded_at = models.DateTimeField(default=timezone.now, verbose_name=_("uploaded at"))

    class Meta:
        verbose_name = _("dispute file")
        verbose_name_plural = _("dispute files")
        ordering = ["id"]

    def __str__(self):
        return _("%(kind)s #%(id)s of dispute #%(dispute)s") % {
            "kind": self.get_kind_display(),
            "id": self.pk,
            "dispute": self.dispute_id,
        }


class PayoutState(models.TextChoices):
    PENDING = "pending", _("Awaiting bank transfer by finance")
    SENDING = "sending", _("Sending to Alipay")
    UNKNOWN = "unknown", _("Sent, outcome unknown")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Refused by the channel")


class TransferForm(ReasonForm):
    bank_reference = forms.CharField(
        max_length=100,
        help_text=_("The transfer's bank reference."),
        label=_("bank reference"),
    )
    transferred_on = forms.DateField(
        help_text=_("The day the money left (YYYY-MM-DD)."), label=_("transferred on")
    )


class RightsHolderPayout(ConcurrentTransitionMixin, models.Model):
    """Money passed on to the rights holder: the deadline refund, or what a top-up paid of
    the debt. Through the disputed trade's channel: an Alipay refund of that trade with
    this row's own `out_request_no` (the same on every retry), or a bank transfer finance
    records. Paid once: the ledger move is keyed on the out_request_no."""

    dispute = models.ForeignKey(
        Dispute, on_delete=models.PROTECT, related_name="payouts", verbose_name=_("dispute")
    )
    disputed_topup = models.ForeignKey(
        DisputedTopUp,
        on_delete=models.PROTECT,
        related_name="payouts",
        verbose_name=_("disputed topup"),
    )
    source = models.CharField(
        max_length=64,
        unique=True,
        help_text=_("What it pays: the deadline, or a top-up's txn."),
        verbose_name=_("source"),
    )
    amount_micro = models.BigIntegerField(verbose_name=_("amount"))
    channel = models.CharField(max_length=16, choices=Channel.choices, verbose_name=_("channel"))
    out_request_no = models.CharField(max_length=64, unique=True, verbose_name=_("out request no"))
    # system moves (Alipay answers) are plain updates; staff move it only by transition
    state = FSMField(
        max_length=10,
        choices=PayoutState.choices,
        default=PayoutState.PENDING,
        verbose_name=_("state"),
    )
    reference = models.CharField(max_length=100, blank=True, verbose_name=_("reference"))
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    last_answer = models.JSONField(default=dict, blank=True, verbose_name=_("last answer"))
    failure_reason = models.TextField(blank=True, verbose_name=_("failure reason"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    last_call_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last call at"))
    paid_at = models.DateTimeField(null=True, blank=True, verbose_name=_("paid at"))
    paid_on = models.DateField(null=True, blank=True, verbose_name=_("paid on"))
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("paid by"),
    )

    class Meta:
        verbose_name = _("rights holder payout")
        verbose_name_plural = _("rights holder payouts")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_micro__gt=0), name="rhpayout_amount_gt0"),
        ]

    def __str__(self):
        return _("Payout %(number)s") % {"number": self.out_request_no}

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

    dispute = models.ForeignKey(
        Dispute, on_delete=models.PROTECT, related_name="collections", verbose_name=_("dispute")
    )
    txn_id = models.BigIntegerField(verbose_name=_("txn id"))
    amount_micro = models.BigIntegerField(verbose_name=_("amount"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("debt collection")
        verbose_name_plural = _("debt collections")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dispute", "txn_id"], name="debtcollection_once"),
        ]

    def __str__(self):
        return f"{from_micro(self.amount_micro)} collected for dispute #{self.dispute_id}"
