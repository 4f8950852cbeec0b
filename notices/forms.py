from django import forms

from .kinds import optional_kinds


class EmailPreferencesForm(forms.Form):
    """One checkbox per optional kind; required kinds are shown, fixed, outside the form."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in optional_kinds():
            self.fields[kind.key] = forms.BooleanField(label=kind.label, required=False)

    def wanted_kinds(self):
        return [key for key, value in self.cleaned_data.items() if value]
