from django import forms


class ReasonForm(forms.Form):
    """Every staff transition asks why; the answer goes to the audit record."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
