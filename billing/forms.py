from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from core.money import parse_amount


class ThresholdForm(forms.Form):
    threshold = forms.CharField(
        required=False,
        max_length=20,
        label=_("Notify me when my available balance falls below (CNY)"),
        help_text=_("Whole fen, e.g. 50.00. Leave empty to turn the notice off."),
    )

    def clean_threshold(self):
        raw = (self.cleaned_data.get("threshold") or "").strip()
        if not raw:
            return None
        try:
            return parse_amount(raw, places=2)
        except ValidationError as exc:
            raise ValidationError(exc.messages[0], code=exc.code)
