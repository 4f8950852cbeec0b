from django import forms
from django.utils.translation import gettext_lazy as _

from core.forms import ReasonForm


class TransferForm(ReasonForm):
    """Finance paid by bank transfer: the bank's reference and the date it left."""

    bank_reference = forms.CharField(
        label=_("bank reference"), max_length=100, help_text=_("The bank's transfer reference")
    )
    transferred_on = forms.DateField(label=_("transferred on"), help_text=_("YYYY-MM-DD"))
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        required=False,
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input; each is checked as a FileField checks one."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if not data:
            return []
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class StaffFilingForm(forms.Form):
    """CS file a refund for a user who asked by email, chat or phone (R-REF-1): the
    service checks the standing, the refundable amount and each proof file."""

    email = forms.EmailField(label=_("Customer email"))
    asked_via = forms.ChoiceField(
        label=_("How the customer asked"),
        choices=[("email", _("By email")), ("chat", _("By chat")), ("phone", _("By phone"))],
    )
    amount = forms.CharField(
        label=_("Amount (CNY)"),
        max_length=20,
        required=False,
        help_text=_("Empty: everything refundable now."),
    )
    reason = forms.CharField(
        label=_("The customer's reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )
    proofs = MultipleFileField(
        label=_("Proof files"),
        required=False,
        help_text=_("PDF, JPEG or PNG; at least one (e.g. the customer's email or chat)."),
    )
