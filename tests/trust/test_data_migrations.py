"""R-ACC-5: the data migrations encrypt what was stored in plain before them (phones,
birth dates, payers and the payers in audit details), and step back cleanly."""

from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.crypto import SEALED_PREFIX, unseal

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNTS_BEFORE = ("accounts", "0003_verification_agreements")
TOPUPS_BEFORE = ("topups", "0001_initial")


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    # the state the database is in now: a fresh loader reads what is applied
    return MigrationExecutor(connection)._create_project_state(with_applied_migrations=True).apps


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _raw(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def test_accounts_migration_encrypts_phones_and_birth_dates():
    """R-ACC-5: plain phones and birth dates stored before accounts 0004 are encrypted by
    it, found by phone afterwards, and decrypted again when it is reversed."""
    try:
        old = _migrate([ACCOUNTS_BEFORE])
        OldUser = old.get_model("accounts", "User")
        OldVerification = old.get_model("accounts", "Verification")
        user = OldUser.objects.create(email="old@example.com", phone="13812345678")
        v = OldVerification.objects.create(
            user=user,
            kind="individual",
            state="approved",
            birth_date=date(1990, 5, 17),
            phone="13812345678",
            identity_hash="h",
        )
        _migrate(_leaves())
        raw_phone, raw_birth = _raw(
            "SELECT phone, birth_date FROM accounts_verification WHERE id = %s", [v.pk]
        )
        assert "1381234" not in raw_phone and "1990" not in str(raw_birth)
        assert "1381234" not in _raw("SELECT phone FROM accounts_user WHERE id = %s", [user.pk])[0]

        from accounts.models import User, Verification

        assert Verification.objects.get(pk=v.pk).birth_date == date(1990, 5, 17)
        assert User.objects.get(phone="138 1234 5678").pk == user.pk

        _migrate([ACCOUNTS_BEFORE])
        assert _raw("SELECT phone FROM accounts_user WHERE id = %s", [user.pk])[0] == "13812345678"
    finally:
        _migrate(_leaves())


def test_topups_migration_encrypts_payers_and_seals_their_audit_details():
    """R-ACC-5: payer names and accounts stored before topups 0002, in the top-up and in
    its audit rows, are encrypted by it."""
    try:
        old = _migrate([TOPUPS_BEFORE, ("disputes", None)])
        User = old.get_model("accounts", "User")
        BalanceAccount = old.get_model("accounts", "BalanceAccount")
        TopUp = old.get_model("topups", "TopUp")
        ContentType = old.get_model("contenttypes", "ContentType")
        AuditRecord = old.get_model("core", "AuditRecord")
        account = BalanceAccount.objects.create(user=User.objects.create(email="payer@example.com"))
        topup = TopUp.objects.create(
            account=account,
            channel="bank",
            amount=100,
            payer_name="Wang Wu",
            payer_account="6222 0000",
            out_trade_no="T-OLD-1",
        )
        ct, _ = ContentType.objects.get_or_create(app_label="topups", model="topup")
        audit = AuditRecord.objects.create(
            content_type=ct,
            object_id=str(topup.pk),
            action="confirm_remittance",
            details={"payer_name": "Wang Wu", "bank_reference": "B-1"},
        )
        _migrate(_leaves())
        raw = _raw("SELECT payer_name, payer_account FROM topups_topup WHERE id = %s", [topup.pk])
        assert "Wang" not in raw[0] and "6222" not in raw[1]
        from core.models import AuditRecord as Audit
        from topups.models import TopUp as NewTopUp

        assert NewTopUp.objects.get(pk=topup.pk).payer_account == "6222 0000"
        details = Audit.objects.get(pk=audit.pk).details
        assert details["payer_name"].startswith(SEALED_PREFIX)
        assert unseal(details["payer_name"]) == "Wang Wu" and details["bank_reference"] == "B-1"
    finally:
        _migrate(_leaves())
