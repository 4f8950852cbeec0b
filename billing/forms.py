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


USAGE_DEFAULT_DAYS = 30
USAGE_MAX_DAYS = 92


class UsageFilterForm(forms.Form):
    """The usage page's range and filters: Beijing dates, both ends included, at most
    USAGE_MAX_DAYS days (default: the last 30); a model and a key narrow it."""

    BY = (("day", _("By day")), ("model", _("By model")), ("key", _("By API key")))

    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput({"type": "date"})
    )
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput({"type": "date"}))
    by = forms.ChoiceField(label=_("Group"), choices=BY, required=False)
    model = forms.CharField(label=_("Model"), required=False, max_length=100)
    api_key = forms.ModelChoiceField(
        label=_("API key"), required=False, queryset=None, empty_label=_("All keys")
    )

    def __init__(self, data, *, keys):
        super().__init__(data)
        self.fields["api_key"].queryset = keys

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=USAGE_DEFAULT_DAYS - 1)
        if start > end:
            raise ValidationError(_("The start date is after the end date."), code="range")
        if (end - start).days + 1 > USAGE_MAX_DAYS:
            raise ValidationError(
                _("Choose at most %(days)s days.") % {"days": USAGE_MAX_DAYS}, code="range"
            )
        data["start"], data["end"] = start, end
        data["by"] = data.get("by") or "day"
        return data


# ---------------------------------------------------------------- spend limits (R-USE-7)

LIMIT_ERRORS = {
    "invalid_amount": _("Enter an amount in CNY, e.g. 100.00."),
    "non_positive_amount": _("The limit must be greater than zero."),
    "too_many_decimals": _("The limit must be whole fen (at most two decimal places)."),
    "limit_too_large": _("The limit may be at most %(high)s CNY."),
}


class SpendLimitForm(forms.Form):
    """A monthly or daily limit on the account or one of the user's own keys."""

    scope = forms.ChoiceField(label=_("Applies to"))
    period = forms.ChoiceField(label=_("Period"))
    amount = forms.CharField(
        label=_("Limit (CNY)"), max_length=20, help_text=_("Whole fen, e.g. 100.00.")
    )
    hard = forms.BooleanField(
        label=_("Hard limit: refuse API calls once reached"),
        required=False,
        initial=True,
        help_text=_("Unchecked: a soft limit, notices at 50 %, 80 % and 100 % only."),
    )

    def __init__(self, data=None, *, account, **kwargs):
        from .models import LimitPeriod

        super().__init__(data, **kwargs)
        self.keys = {str(k.pk): k for k in account.api_keys.order_by("-created_at")}
        self.fields["scope"].choices = [("account", _("The whole account"))] + [
            (pk, _("API key %(prefix)s… (%(name)s)") % {"prefix": k.prefix, "name": k.name})
            for pk, k in self.keys.items()
        ]
        self.fields["period"].choices = LimitPeriod.choices

    def clean_amount(self):
        from .services.engine import LedgerError
        from .services.limits import ceiling_micro, parse_limit

        try:
            parse_limit(self.cleaned_data["amount"])
        except LedgerError as exc:
            message = LIMIT_ERRORS.get(exc.code, LIMIT_ERRORS["invalid_amount"])
            high = f"{Decimal(ceiling_micro()) / 1_000_000:.2f}"
            raise ValidationError(message, code=exc.code, params={"high": high})
        return self.cleaned_data["amount"].strip()

    @property
    def api_key(self):
        scope = self.cleaned_data.get("scope")
        return None if scope == "account" else self.keys.get(scope)
