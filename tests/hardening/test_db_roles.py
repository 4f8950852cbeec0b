"""PostgreSQL roles (issue 13, issue 20): the portal's role owns nothing and is refused what
would let one mistake (or one intruder) rewrite the books or the case history; the portal
still works as that role."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command

from tests.workers import connect_kwargs, database_url

ROOT = Path(__file__).resolve().parent.parent.parent
ROLE = "portal_app_test"

pytestmark = [pytest.mark.django_db(transaction=True)]


def _connect():
    return psycopg.connect(
        **connect_kwargs(),
        user=ROLE,
        password=os.environ.get("PORTAL_APP_DB_PASSWORD") or None,
        autocommit=True,
    )


@pytest.fixture
def app_role(account, api_key):
    from billing.services.ledger import credit_lot
    from billing.services.settlement import charge_usage
    from core.workflow import record_audit
    from tests.factories import cny

    credit_lot(account, cny("5"), channel="alipay", idempotency_key="L")
    charge_usage(api_key, cny("1"), request_id="r1", model="m")
    record_audit(account, action="role-test", reason="a case history to protect")
    call_command("setup_db_roles", app_role=ROLE)
    return ROLE


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_posting SET amount_micro = 0",
        "DELETE FROM billing_posting",
        "TRUNCATE billing_posting CASCADE",
        "UPDATE billing_usageevent SET amount_micro = 0",
        "DELETE FROM billing_usageevent",
        "TRUNCATE billing_usageevent",
        "ALTER TABLE billing_posting DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
        "CREATE TABLE intruder (id int)",
        "DROP TABLE billing_lot",
        # issue 20: the ledger transactions and the case history are as safe as postings
        "UPDATE billing_ledgertransaction SET memo = 'rewritten'",
        "DELETE FROM billing_ledgertransaction",
        "TRUNCATE billing_ledgertransaction CASCADE",
        "ALTER TABLE billing_ledgertransaction DISABLE TRIGGER ALL",
        "UPDATE core_auditrecord SET reason = 'rewritten'",
        "DELETE FROM core_auditrecord",
        "TRUNCATE core_auditrecord",
        "ALTER TABLE core_auditrecord DISABLE TRIGGER ALL",
    ],
)
def test_the_portal_role_is_refused(app_role, statement):
    """Issue 13 / issue 20: as the portal's role, no rewriting postings, ledger
    transactions, usage events or audit records, no switching the ledger triggers off, no
    DDL: PostgreSQL refuses (insufficient privilege)."""
    with _connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_every_append_only_table_is_refused(app_role):
    """Issue 20: the books (postings, ledger transactions) and the case history (audit
    records) are append-only for the portal's role: it may read and add, never change."""
    assert {"billing_posting", "billing_ledgertransaction", "core_auditrecord"} <= set(
        settings.DB_APPEND_ONLY_TABLES
    )
    with _connect() as conn:
        for table in settings.DB_APPEND_ONLY_TABLES:
            (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert rows > 0, table
            privileges = conn.execute(
                "SELECT p, has_table_privilege(%s, %s, p)"
                " FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p",
                [ROLE, table],
            ).fetchall()
            assert dict(privileges) == {
                "SELECT": True,
                "INSERT": True,
                "UPDATE": False,
                "DELETE": False,
                "TRUNCATE": False,
            }, table
            for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)


def test_the_portal_role_owns_nothing_and_may_do_its_work(app_role):
    """Issue 13: the role owns no table, and may read and insert where the portal does."""
    with _connect() as conn:
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = %s",
            [ROLE],
        ).fetchone()[0]
        assert owned == 0
        assert conn.execute("SELECT count(*) FROM billing_usageevent").fetchone()[0] == 1
        conn.execute("UPDATE billing_lot SET memo = memo")  # ordinary tables stay writable
        # the case history grows as the portal works (core.workflow writes it)
        conn.execute(
            "INSERT INTO core_auditrecord"
            " (content_type_id, object_id, action, from_state, to_state, reason, details, at)"
            " SELECT id, '1', 'role-test', '', '', '', '{}', now() FROM django_content_type"
            " LIMIT 1"
        )


def test_the_portal_charges_and_reconciles_as_its_role(app_role):
    """Issue 13: the whole charging path (locks, postings, charge row, caches) and the
    reconciliation run as the owner-less role (a separate process connected as it)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(ROLE, os.environ.get("PORTAL_APP_DB_PASSWORD")),
    }
    script = (
        "from decimal import Decimal\n"
        "from accounts.models import ApiKey\n"
        "from billing.services.settlement import charge_usage\n"
        "from billing.services.reconcile import reconcile_all\n"
        "key = ApiKey.objects.get()\n"
        "c = charge_usage(key, Decimal('0.5'), request_id='as-role', model='m')\n"
        "print('charged', c.amount_micro, reconcile_all().ok)\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "charged 500000 True" in result.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_usageevent SET cash_micro = cash_micro",  # settled: final
        "UPDATE billing_usageevent SET transaction_id = NULL, cash_micro = 0, trial_micro = 0,"
        " discount_micro = 0, arrears_micro = 0",  # unsettle
    ],
)
def test_a_settled_usage_event_is_final_even_for_its_columns(app_role, statement):
    """R-LED-2 / R-USE-5: the portal's role may write only the settlement's columns of a
    usage event, and the trigger of migration billing/0016 refuses changing an event that
    is already settled, for every role: an event is settled once."""
    with _connect() as conn, pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        conn.execute(statement)
