from datetime import datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.money import parse_amount

THRESHOLD_MAX = Decimal("1000000.00")  # far above any balance; the column holds 16 digits


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
            amount = parse_amount(raw, places=2)
        except ValidationError as exc:
            raise ValidationError(exc.messages[0], code=exc.code)
        if amount.amount > THRESHOLD_MAX:  # issue 13: a form error, not a database overflow
            raise ValidationError(
                _("From %(low)s to %(high)s CNY, at most two decimal places.")
                % {"low": "0.01", "high": f"{THRESHOLD_MAX:.2f}"},
                code="too_large",
            )
        return amount


class StatementFilterForm(forms.Form):
    """Filters of the user's statement. The key list holds only the user's own keys, so
    another user's key id is a form error, never a peek at their usage."""

    kind = forms.ChoiceField(label=_("Kind"), required=False)
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput({"type": "date"})
    )
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput({"type": "date"}))
    api_key = forms.ModelChoiceField(
        label=_("API key"), required=False, queryset=None, empty_label=_("All keys")
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data, *, account, kinds):
        super().__init__(data)
        self.fields["kind"].choices = [("", _("All kinds")), *kinds]
        self.fields["api_key"].queryset = account.api_keys.order_by("-created_at")

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise ValidationError(_("The start date is after the end date."), code="bad_range")
        return data

    def bounds(self):
        """The dates as aware datetimes: from the start of `since` to the end of `until`,
        local time (Asia/Shanghai)."""
        tz = timezone.get_current_timezone()
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        start = timezone.make_aware(datetime.combine(since, time.min), tz) if since else None
        end = (
            timezone.make_aware(datetime.combine(until + timedelta(days=1), time.min), tz)
            if until
            else None
        )
        return start, end
