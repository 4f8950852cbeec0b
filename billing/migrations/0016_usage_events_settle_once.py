"""PostgreSQL guard for usage events (R-LED-2, R-USE-5): what an event is (request id,
account, key, model, amount) never changes; it is settled once and is final after that;
it is never deleted. (Its timestamps are not columns the portal's role may update at all:
setup_db_roles grants it only the settlement's columns.) The WHEN clause is evaluated without calling the function, so a lawful
settlement pays for no PL/pgSQL call; only a forbidden change reaches the RAISE."""

from django.db import migrations

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION billing_charge_settle_once() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'usage event % may only be settled, once (% refused)',
            OLD.id, TG_OP USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER billing_charge_settle_once
        BEFORE UPDATE ON billing_charge FOR EACH ROW
        WHEN (OLD.transaction_id IS NOT NULL
              OR (NEW.request_id, NEW.account_id, NEW.api_key_id, NEW.model, NEW.amount_micro)
                 IS DISTINCT FROM
                 (OLD.request_id, OLD.account_id, OLD.api_key_id, OLD.model, OLD.amount_micro))
        EXECUTE FUNCTION billing_charge_settle_once();
    """,
    """
    CREATE TRIGGER billing_charge_no_delete
        BEFORE DELETE ON billing_charge FOR EACH ROW
        EXECUTE FUNCTION billing_charge_settle_once();
    """,
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS billing_charge_no_delete ON billing_charge;",
    "DROP TRIGGER IF EXISTS billing_charge_settle_once ON billing_charge;",
    "DROP FUNCTION IF EXISTS billing_charge_settle_once();",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0015_charge_events_by_transaction_in_order")]

    operations = [migrations.RunPython(forward, backward)]
