from django import forms
from django.utils.translation import gettext_lazy as _


class ReasonForm(forms.Form):
    """Every staff transition asks why; the answer goes to the audit record."""

    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )
