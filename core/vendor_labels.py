"""Words of third-party admin pages that their own catalogues leave in English (issue 21).

Two kinds: msgids a vendor marks for translation but ships no Simplified Chinese for
(Django 5.2's newest admin strings, django-axes, part of django-celery-beat), listed
here with gettext_noop so that makemessages keeps them in our catalogue, which Django
consults for every app; and names a vendor never marks (django-otp's TOTP device),
given translated labels when the apps are ready.
"""

from django.apps import apps
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

VENDOR_MSGIDS = (
    # django.contrib.admin (5.2): column headings of the app list, read by screen readers
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    # django-axes: login lockouts
    gettext_noop("Access Attempt"),
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("Access lock out"),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Attempt Time"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Expires At"),
    gettext_noop("Failed Logins"),
    gettext_noop("Form Data"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("HTTP Accept"),
    gettext_noop("IP Address"),
    gettext_noop("Locked Out"),
    gettext_noop("Logout Time"),
    gettext_noop("Meta Data"),
    gettext_noop("Not set"),
    gettext_noop("Path"),
    gettext_noop("Session key hash (sha256)"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("User Agent"),
    gettext_noop("Username"),
    # django-celery-beat
    gettext_noop("Arguments"),
    gettext_noop("Execution Options"),
    gettext_noop("Schedule"),
    gettext_noop("Scheduler"),
    gettext_noop("Periodic Tasks Using This Schedule"),
    gettext_noop("Crontab translation"),
    gettext_noop("Human readable"),
    gettext_noop("Regtask"),
    gettext_noop(
        'Cron Days Of The Week to Run. Use "*" for "all", Sunday is 0 or 7, Monday is 1. '
        '(Example: "0,5")'
    ),
    gettext_noop('Cron Months (1-12) Of The Year to Run. Use "*" for "all". (Example: "1,12")'),
)


def label_vendor_models():
    """django-otp names its TOTP device in plain English: give the admin our words."""

    for app, model_name, singular, plural in (
        ("otp_totp", "TOTPDevice", _("TOTP device"), _("TOTP devices")),
        ("otp_static", "StaticDevice", _("static code device"), _("static code devices")),
    ):
        if not apps.is_installed(f"django_otp.plugins.{app}"):
            continue
        config = apps.get_app_config(app)
        config.verbose_name = _("Two-factor devices")
        model = config.get_model(model_name)
        model._meta.verbose_name = singular
        model._meta.verbose_name_plural = plural
        for name, label in (
            ("user", _("user")),
            ("name", _("name")),
            ("confirmed", _("confirmed")),
            ("created_at", _("created at")),
            ("last_used_at", _("last used at")),
        ):
            try:
                model._meta.get_field(name).verbose_name = label
            except FieldDoesNotExist:
                continue
        # django.contrib.admin is ready before core (INSTALLED_APPS order): it is registered
        model_admin = admin.site._registry.get(model)
        if model_admin is not None:
            model_admin.search_help_text = _("User email")
    if apps.is_installed("axes"):
        apps.get_app_config("axes").verbose_name = _("Login lockouts")
