from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _

from core.text import refuse_unsafe_characters

from .models import User


class SignUpForm(forms.Form):
    email = forms.EmailField(
        label=_("Email"), max_length=254
    )  # the column's length: longer is a form error
    phone = forms.RegexField(
        regex=r"^\+?\d{6,20}$",
        required=False,
        label=_("Mobile phone (optional)"),
        error_messages={"invalid": _("Digits only.")},
    )
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, min_length=8)

    def clean_email(self):
        # whether the address already has an account is never said here (no enumeration):
        # the view answers the same either way
        return self.cleaned_data["email"].lower()

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            # checked against the new user's own attributes (email, phone) too
            candidate = User(email=cleaned.get("email", ""), phone=cleaned.get("phone", ""))
            try:
                validate_password(password, user=candidate)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class IndividualVerificationForm(forms.Form):
    legal_name = forms.CharField(max_length=100, label=_("Legal name (as on your ID card)"))
    id_number = forms.CharField(max_length=30, label=_("Resident ID number"))
    phone = forms.RegexField(
        regex=r"^\+?\d{6,20}$",
        label=_("Mobile phone"),
        error_messages={"invalid": _("Digits only.")},
    )


class EnterpriseVerificationForm(forms.Form):
    company_name = forms.CharField(label=_("Company name"), max_length=200)
    credit_code = forms.CharField(max_length=30, label=_("Unified social credit code"))
    legal_representative = forms.CharField(label=_("Legal representative"), max_length=100)
    phone = forms.RegexField(
        regex=r"^\+?\d{6,20}$",
        label=_("Contact phone"),
        error_messages={"invalid": _("Digits only.")},
    )
    licence_file = forms.FileField(
        label=_("Business licence (PDF, JPEG or PNG)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png"}),
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("A label to tell your keys apart."),
        validators=[refuse_unsafe_characters],  # issue 24: no spoofing characters
    )


class CapacityExceptionForm(forms.Form):
    note = forms.CharField(
        label=_("note"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text=_("What shows the 16-18 year old lives on their own income."),
    )
    evidence_file = forms.FileField(label=_("evidence"), help_text=_("PDF, JPEG or PNG."))
