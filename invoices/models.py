"""Invoice requests for consumed cash (SPEC §8, agreement §7): the case, the proof
files of a company title, and the electronic invoice files the tax platform returned.

Amounts are integer micro-units like the ledger (1 CNY = 1,000,000); invoices are whole
fen (R-LED-3), so `amount_micro` is a multiple of 10,000. An invoice moves no money:
it records that consumed cash has been invoiced, so it is not invoiced twice (R-INV-1).
"""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Mod
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts import proof_files
from billing.micro import FEN_MICRO, MicroMoney
from core.forms import ReasonForm


class InvoiceState(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    ISSUED = "issued", _("Issued")
    REJECTED = "rejected", _("Rejected")
    REVERSED = "reversed", _("Reversed (red-letter)")


# A request in these states holds its amount: reserved on submission, invoiced on issue.
# Rejection and red-letter reversal release it (R-INV-1).
HOLDING_STATES = (InvoiceState.SUBMITTED, InvoiceState.ISSUED)


class InvoiceKind(models.TextChoices):
    ORDINARY = "ordinary", _("Ordinary electronic invoice (普通发票)")
    SPECIAL = "special", _("Special VAT invoice (增值税专用发票)")


class TitleType(models.TextChoices):
    PERSONAL = "personal", _("Personal")
    COMPANY = "company", _("Company")


class RedLetterReason(models.TextChoices):
    ISSUING_ERROR = "issuing_error", _("Issuing error (开票有误)")
    SALES_RETURN = "sales_return", _("Sales return (销货退回)")
    SERVICE_TERMINATED = "service_terminated", _("Service terminated (服务中止)")
    SALES_ALLOWANCE = "sales_allowance", _("Sales allowance (销售折让)")


class FileKind(models.TextChoices):
    PDF = "pdf", _("PDF")
    OFD = "ofd", _("OFD")
    XML = "xml", _("XML")


class RejectInvoiceForm(ReasonForm):
    """The reason is sent to the user in the rejection notice."""


class ReverseInvoiceForm(ReasonForm):
    """A red-letter reversal: one of the red-letter reasons, and the note for the file."""

    red_letter_reason = forms.ChoiceField(
        choices=RedLetterReason.choices, label=_("red letter reason")
    )
    red_letter_number = forms.CharField(
        max_length=40,
        required=False,
        help_text=_("The red-letter confirmation or invoice number from the tax platform."),
        label=_("red letter number"),
    )


def proof_upload_to(instance, filename):
    return proof_files.stored_name("invoice-proofs", filename)


def invoice_upload_to(instance, filename):
    return proof_files.stored_name("invoices", f"invoice.{instance.kind}")


class InvoiceRequest(ConcurrentTransitionMixin, models.Model):
    """One invoice request of a balance account (R-INV-2): its title, kind and amount,
    reserved on submission from the consumed cash not yet invoiced."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="invoice_requests",
        verbose_name=_("account"),
    )
    # Only transitions write `state` (not protected=True: see topups.models.TopUp).
    state = FSMField(
        default=InvoiceState.SUBMITTED, choices=InvoiceState.choices, verbose_name=_("state")
    )
    kind = models.CharField(max_length=10, choices=InvoiceKind.choices, verbose_name=_("kind"))
    title_type = models.CharField(
        max_length=10, choices=TitleType.choices, verbose_name=_("title type")
    )
    title = models.CharField(
        max_length=200, help_text=_("The buyer's name on the invoice."), verbose_name=_("title")
    )
    taxpayer_id = models.CharField(
        max_length=20,
        blank=True,
        help_text=_("The buyer's taxpayer id (credit code)."),
        verbose_name=_("taxpayer id"),
    )
    # special VAT invoices only (verified enterprises)
    registered_address = models.CharField(
        max_length=200, blank=True, verbose_name=_("registered address")
    )
    registered_phone = models.CharField(
        max_length=40, blank=True, verbose_name=_("registered phone")
    )
    bank_name = models.CharField(max_length=100, blank=True, verbose_name=_("bank name"))
    bank_account = models.CharField(max_length=40, blank=True, verbose_name=_("bank account"))
    email = models.EmailField(
        help_text=_("Where the electronic invoice is sent."), verbose_name=_("email")
    )
    amount_micro = models.BigIntegerField(
        help_text=_("Whole fen, reserved on submission."), verbose_name=_("amount")
    )
    covers_from = models.DateField(
        null=True, blank=True, help_text=_("First month it covers."), verbose_name=_("covers from")
    )
    covers_to = models.DateField(
        null=True, blank=True, help_text=_("Last month it covers."), verbose_name=_("covers to")
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("filed by"),
    )
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=_("created at")
    )
    # issuing (R-INV-4)
    invoice_number = models.CharField(max_length=20, blank=True, verbose_name=_("invoice number"))
    issued_on = models.DateField(null=True, blank=True, verbose_name=_("issued on"))
    issued_at = models.DateTimeField(null=True, blank=True, verbose_name=_("issued at"))
    issuer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("issuer"),
    )
    xml_fields = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("What the portal read from the invoice XML."),
        verbose_name=_("xml fields"),
    )
    # rejection / reversal
    decision_reason = models.TextField(
        blank=True, help_text=_("Told to the user on rejection."), verbose_name=_("decision reason")
    )
    red_letter_reason = models.CharField(
        max_length=20,
        choices=RedLetterReason.choices,
        blank=True,
        verbose_name=_("red letter reason"),
    )
    red_letter_number = models.CharField(
        max_length=40, blank=True, verbose_name=_("red letter number")
    )
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))

    class Meta:
        verbose_name = _("invoice request")
        verbose_name_plural = _("invoice requests")
        ordering = ["-created_at", "-id"]
        permissions = [
            (
                "issue_invoicerequest",
                gettext_noop("Can issue an invoice (upload the tax platform's files)"),
            ),
            ("reject_invoicerequest", gettext_noop("Can reject an invoice request")),
            ("reverse_invoicerequest", gettext_noop("Can reverse an issued invoice (red-letter)")),
            ("view_invoice_file", gettext_noop("Can download issued invoice files")),
            ("view_invoice_proof", gettext_noop("Can open title proof files (each view audited)")),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="invoice_queue")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_micro__gt=0), name="invoice_amount_gt0"),
            models.CheckConstraint(
                condition=Exact(Mod("amount_micro", FEN_MICRO), 0), name="invoice_whole_fen"
            ),
            models.UniqueConstraint(
                fields=["invoice_number"],
                condition=~Q(invoice_number=""),
                name="invoice_number_unique",
            ),
        ]

    def __str__(self):
        return _("Invoice request #%(id)s") % {"id": self.pk}

    amount = MicroMoney("amount_micro")

    # --- workflow (R-INV-2). Services run these through core.workflow.apply_transition.

    @transition(
        state,
        source=InvoiceState.SUBMITTED,
        target=InvoiceState.ISSUED,
        permission="invoices.issue_invoicerequest",
        custom={"label": _("Issue"), "admin": False},
    )
    def issue(self, issuer=None, invoice_number="", issued_on=None, xml_fields=None):
        self.issuer = issuer
        self.invoice_number = invoice_number
        self.issued_on = issued_on
        self.issued_at = timezone.now()
        self.xml_fields = xml_fields or {}

    @transition(
        state,
        source=InvoiceState.SUBMITTED,
        target=InvoiceState.REJECTED,
        permission="invoices.reject_invoicerequest",
        custom={"label": _("Reject"), "form": RejectInvoiceForm},
    )
    def reject(self, decision_reason=""):
        if not decision_reason.strip():
            raise ValidationError("A rejection needs a reason the user can act on.")
        self.decision_reason = decision_reason.strip()
        self.closed_at = timezone.now()

    @transition(
        state,
        source=InvoiceState.ISSUED,
        target=InvoiceState.REVERSED,
        permission="invoices.reverse_invoicerequest",
        custom={"label": _("Reverse (red-letter)"), "form": ReverseInvoiceForm},
    )
    def reverse(self, red_letter_reason="", red_letter_number=""):
        if red_letter_reason not in RedLetterReason.values:
            raise ValidationError("Choose one of the red-letter reasons.")
        self.red_letter_reason = red_letter_reason
        self.red_letter_number = red_letter_number
        self.closed_at = timezone.now()


class InvoiceProof(models.Model):
    """A proof file of a company title asked for by an individual (R-INV-3): employment
    certificate, business licence or work badge. PDF/JPEG/PNG checked by content,
    encrypted at rest, opened only with invoices.view_invoice_proof (audited)."""

    request = models.ForeignKey(
        InvoiceRequest, on_delete=models.PROTECT, related_name="proofs", verbose_name=_("request")
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
        verbose_name = _("invoice proof")
        verbose_name_plural = _("invoice proofs")
        ordering = ["id"]

    def __str__(self):
        return _("Proof #%(id)s of invoice request #%(request)s") % {
            "id": self.pk,
            "request": self.request_id,
        }


class InvoiceFile(models.Model):
    """An electronic invoice file the tax platform returned (R-INV-4), checked by content,
    encrypted at rest, served only to the owner and to staff with the permission."""

    request = models.ForeignKey(
        InvoiceRequest, on_delete=models.PROTECT, related_name="files", verbose_name=_("request")
    )
    kind = models.CharField(max_length=4, choices=FileKind.choices, verbose_name=_("kind"))
    file = models.FileField(
        storage=proof_files.storage,
        upload_to=invoice_upload_to,
        max_length=200,
        verbose_name=_("file"),
    )
    size = models.PositiveIntegerField(verbose_name=_("size"))
    sha256 = models.CharField(max_length=64, verbose_name=_("sha256"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    uploaded_at = models.DateTimeField(default=timezone.now, verbose_name=_("uploaded at"))

    class Meta:
        verbose_name = _("invoice file")
        verbose_name_plural = _("invoice files")
        ordering = ["request", "kind", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "kind"], name="invoicefile_one_per_kind")
        ]

    def __str__(self):
        return _("%(kind)s of invoice request #%(request)s") % {
            "kind": self.get_kind_display(),
            "request": self.request_id,
        }

    @property
    def content_type(self):
        return proof_files.CONTENT_TYPES[self.kind]

    @property
    def download_name(self):
        number = self.request.invoice_number or f"request-{self.request_id}"
        return f"invoice-{number}.{self.kind}"
