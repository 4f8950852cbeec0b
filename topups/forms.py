from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from billing.models import Channel
from core.forms import ReasonForm
from core.money import parse_amount


class AmountField(forms.CharField):
    """A CNY amount typed by a person: parsed by core.money, never through float."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        return parse_amount(value)


class RemittanceForm(ReasonForm):
    """What finance reads off the bank statement to confirm a remittance."""

    received_amount = AmountField(
        label=_("received amount"), help_text=_("Amount that arrived, CNY, e.g. 100.00")
    )
    payer_name = forms.CharField(label=_("payer name"), max_length=200)
    payer_account = forms.CharField(label=_("payer account"), max_length=200)
    bank_reference = forms.CharField(
        label=_("bank reference"),
        max_length=64,
        help_text=_("The bank's transaction reference"),
    )
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        required=False,
    )


class TopUpForm(forms.Form):
    amount = forms.CharField(
        max_length=20, label=_("Amount"), help_text=_("CNY, at most two decimal places")
    )
    currency = forms.ChoiceField(
        label=_("currency"), choices=[("CNY", "CNY")], initial="CNY", required=False
    )
    channel = forms.ChoiceField(
        label=_("Pay with"),
        choices=[(Channel.ALIPAY, _("Alipay")), (Channel.BANK, _("Bank transfer"))],
        initial=Channel.ALIPAY,
        widget=forms.RadioSelect,
    )
    accept_agreement = forms.BooleanField(
        required=False, label=_("I have read and accept the service agreement shown above")
    )
    agreement_version = forms.IntegerField(
        label=_("agreement version"), required=False, widget=forms.HiddenInput
    )


class GrantValidityForm(forms.Form):
    """Staff extend or shorten a grant's validity (admin "Grant validity", R-TOP-5)."""

    expires_at = forms.DateTimeField(
        label=_("New expiry"),
        help_text=_("YYYY-MM-DD HH:MM:SS (local time), e.g. 2026-12-31 23:59:59"),
    )
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )


class EndPromotionForm(ReasonForm):
    """The admin's "End promotion" button: a reason, and whether to void unused benefits."""

    void_unused = forms.BooleanField(
        required=False, label=_("Also void the unused benefits this promotion granted")
    )


class StatementUploadForm(forms.Form):
    statement = forms.FileField(
        label=_("statement"),
        help_text=_(
            "CSV with columns: reference, amount, payer_name, payer_account, bank_reference"
        ),
    )

    MAX_BYTES = 1024 * 1024

    def clean_statement(self):
        f = self.cleaned_data["statement"]
        if f.size > self.MAX_BYTES:
            raise ValidationError("The statement is larger than 1 MB.")
        if not f.name.lower().endswith(".csv"):
            raise ValidationError("Upload a .csv file.")
        return f


class ManualTopUpForm(forms.Form):
    """Finance records a payment received by another route (channel "other")."""

    email = forms.EmailField(label=_("email"), help_text=_("The account holder's login email"))
    amount = forms.CharField(label=_("amount"), max_length=20, help_text=_("CNY, e.g. 100.00"))
    payer_name = forms.CharField(label=_("payer name"), max_length=200)
    payer_account = forms.CharField(label=_("payer account"), max_length=200)
    reference = forms.CharField(
        label=_("reference"), max_length=64, help_text=_("The payment's transaction reference")
    )
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )
