from django import forms
from django.contrib.auth.password_validation import validate_password

from .models import User


class SignUpForm(forms.Form):
    email = forms.EmailField()
    phone = forms.RegexField(
        regex=r"^\+?\d{6,20}$", required=False, error_messages={"invalid": "Digits only."}
    )
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email

    def clean_password(self):
        password = self.cleaned_data["password"]
        validate_password(password)
        return password
