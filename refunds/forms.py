from django import forms

from core.forms import ReasonForm


class TransferForm(ReasonForm):
    """Finance paid by bank transfer: the bank's reference and the date it left."""

    bank_reference = forms.CharField(max_length=100, help_text="The bank's transfer reference")
    transferred_on = forms.DateField(help_text="YYYY-MM-DD")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False
    )
