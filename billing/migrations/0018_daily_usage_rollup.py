"""The daily usage rollup (issue 22): optional token counts on usage events, and
DailyUsage (account × Beijing day × model × key), which settlement maintains. Existing
settled events are summed into it here, so the rollup equals a scan from the start."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_email_verified_at"),
        ("billing", "0017_usage_event_named"),
    ]

    operations = [
        migrations.AddField(
            model_name="usageevent",
            name="input_tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="output_tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="DailyUsage",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("model", models.CharField(max_length=100)),
                ("calls", models.BigIntegerField(default=0)),
                ("amount_micro", models.BigIntegerField(default=0)),
                ("input_tokens", models.BigIntegerField(default=0)),
                ("output_tokens", models.BigIntegerField(default=0)),
                (
                    "account",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.balanceaccount",
                    ),
                ),
                (
                    "api_key",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.apikey",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "day", "model", "api_key"),
                        name="billing_dailyusage_unique",
                        nulls_distinct=False,
                    )
                ],
            },
        ),
        migrations.RunSQL(
            """
            INSERT INTO billing_dailyusage (account_id, day, model, api_key_id, calls,
                   amount_micro, input_tokens, output_tokens)
            SELECT account_id, (created_at AT TIME ZONE 'Asia/Shanghai')::date, model,
                   api_key_id, COUNT(*), SUM(amount_micro), COALESCE(SUM(input_tokens), 0),
                   COALESCE(SUM(output_tokens), 0)
              FROM billing_usageevent WHERE transaction_id IS NOT NULL
             GROUP BY 1, 2, 3, 4
            """,
            migrations.RunSQL.noop,
        ),
    ]
