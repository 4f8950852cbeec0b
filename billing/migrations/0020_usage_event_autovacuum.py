"""Autovacuum settings of their own for the usage events (issue 25).

billing_usageevent takes millions of INSERTs and one settling UPDATE per row: with the
defaults (vacuum at 20 % dead rows, analyze at 10 %) a table of 100 million events waits
for 20 million dead rows before a vacuum, its pending partial index bloats, and the
planner's statistics lag days behind. These thresholds vacuum after about 1 % dead rows
(plus 10,000), analyze after 2 %, and vacuum after 5 % newly inserted rows (PostgreSQL 13+:
keeps the visibility map current for index-only scans of the settled rows), with a
higher cost limit so one vacuum of this table does not take hours."""

from django.db import migrations

SETTINGS = (
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 10000, "
    "autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_cost_limit = 2000"
)
RESET = (
    "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
    "autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, "
    "autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_cost_limit"
)


class Migration(migrations.Migration):
    dependencies = [("billing", "0019_packages_and_spend_limits")]

    operations = [
        migrations.RunSQL(
            f"ALTER TABLE billing_usageevent SET ({SETTINGS})",
            f"ALTER TABLE billing_usageevent RESET ({RESET})",
        )
    ]
