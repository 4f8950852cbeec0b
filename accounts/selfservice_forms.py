"""Forms of the user's own account pages (issue 22): password reset through the one
notice service, profile, email change, signing out everywhere."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from notices.services import send_notice

# At most one reset link every two minutes and five a day per user, like the email
# verification links (accounts.services.registration).
RESET_MIN_INTERVAL = timedelta(minutes=2)
RESET_MAX_PER_DAY = 5


def _recently_sent(user) -> bool:
    from notices.models import Notice

    now = timezone.now()
    sent = list(
        Notice.objects.filter(
            user_id=user.pk, kind="password_reset", created_at__gt=now - timedelta(days=1)
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:RESET_MAX_PER_DAY]
    )
    return bool(sent) and (sent[0] > now - RESET_MIN_INTERVAL or len(sent) >= RESET_MAX_PER_DAY)


class NoticePasswordResetForm(PasswordResetForm):
    """Django's reset form (the same answer for known and unknown addresses; a signed,
    expiring token that a new password or login spends), but the email is a notice in
    the user's language instead of Django's English template."""

    def send_mail(self, subject_template_name, email_template_name, context, *args, **kwargs):
        user = context["user"]
        if _recently_sent(user):
            return  # the same answer on the page; no mail cannon against someone's inbox
        path = reverse("accounts:password_reset_confirm", args=[context["uid"], context["token"]])
        base = (getattr(settings, "PORTAL_BASE_URL", "") or "").rstrip("/")
        url = (base or f"{context['protocol']}://{context['domain']}") + path
        send_notice(
            user=user,
            kind="password_reset",
            context={"url": url, "hours": settings.PASSWORD_RESET_TIMEOUT // 3600},
            dedupe_key=f"password_reset:{user.pk}:{timezone.now().timestamp():.6f}",
        )


class ProfileForm(forms.Form):
    phone = forms.RegexField(
        regex=r"^\+?\d{6,20}$",
        required=False,
        label=_("Mobile phone"),
        help_text=_("For urgent notices by SMS. Leave empty for none."),
        error_messages={"invalid": _("Digits only.")},
    )
    language = forms.ChoiceField(label=_("Language of pages and emails"), choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [(c, _(n)) for c, n in settings.LANGUAGES]


class EmailChangeForm(forms.Form):
    email = forms.EmailField(label=_("New email address"), max_length=254)


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
