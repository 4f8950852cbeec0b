"""PostgreSQL guards for the ledger: append-only postings (R-LED-2) and zero-sum
transactions checked at commit (R-LED-1). SQLite relies on the service layer."""

from django.db import migrations

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION billing_posting_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger postings are append-only (% refused); post a reversal instead',
            TG_OP USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER billing_posting_no_update_delete
        BEFORE UPDATE OR DELETE ON billing_posting
        FOR EACH ROW EXECUTE FUNCTION billing_posting_append_only();
    """,
    """
    CREATE OR REPLACE FUNCTION billing_transaction_zero_sum() RETURNS trigger AS $$
    DECLARE
        total numeric;
        lines integer;
    BEGIN
        SELECT COALESCE(SUM(amount_micro), 0), COUNT(*) INTO total, lines
          FROM billing_posting WHERE transaction_id = NEW.transaction_id;
        IF total <> 0 OR lines < 2 THEN
            RAISE EXCEPTION 'ledger transaction % is unbalanced (sum %, % postings)',
                NEW.transaction_id, total, lines USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE CONSTRAINT TRIGGER billing_posting_zero_sum
        AFTER INSERT ON billing_posting
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION billing_transaction_zero_sum();
    """,
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS billing_posting_zero_sum ON billing_posting;",
    "DROP FUNCTION IF EXISTS billing_transaction_zero_sum();",
    "DROP TRIGGER IF EXISTS billing_posting_no_update_delete ON billing_posting;",
    "DROP FUNCTION IF EXISTS billing_posting_append_only();",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql, params=None)


def chart_of_accounts(apps, schema_editor):
    from billing.chart import ensure_platform_accounts

    ensure_platform_accounts(apps.get_model("billing", "LedgerAccount"))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_ledger")]

    operations = [
        migrations.RunPython(forward, backward),
        migrations.RunPython(chart_of_accounts, migrations.RunPython.noop),
    ]
