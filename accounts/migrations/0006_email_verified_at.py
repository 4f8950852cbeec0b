"""Email verification before a new account can act (issue 13).

Adds `User.email_verified_at`. Every user that exists when this runs was created
before the rule existed (by the sign-up of the time, by staff, by the demo), so each
is marked verified at the instant they joined (`date_joined`): existing accounts and
the demo data keep working, and only accounts signed up from now on must click the
link sent to their address.
"""

import django.utils.timezone
from django.db import migrations, models


def mark_existing_verified(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    User.objects.update(email_verified_at=models.F("date_joined"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_chinese_first_language"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
        ),
        migrations.RunPython(mark_existing_verified, migrations.RunPython.noop),
    ]
