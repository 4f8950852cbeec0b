"""The usage event is called what it is (issue 20): `Charge` → `UsageEvent`, its table
`billing_charge` → `billing_usageevent`. Index, constraint and trigger names keep their
old spelling (a rename would rewrite nothing but names); the settle-once trigger stays on
the table through the rename."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("billing", "0016_usage_events_settle_once"),
    ]

    operations = [
        migrations.RenameModel("Charge", "UsageEvent"),
        migrations.AlterField(
            model_name="usageevent",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_events",
                to="accounts.balanceaccount",
            ),
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="transaction",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_events",
                to="billing.ledgertransaction",
            ),
        ),
    ]
