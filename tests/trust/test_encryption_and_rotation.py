"""R-ACC-5: phone numbers, birth dates, payer names and payer accounts are encrypted at
rest (audit details included); `rotate_keys` re-encrypts everything and re-hashes
identities under new keys, so the old keys can be retired."""

import io
from datetime import date

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from accounts.crypto import SEALED_PREFIX, unseal
from accounts.identity import identity_hash, make_resident_id
from accounts.models import User, Verification
from accounts.services import submit_verification
from core.models import AuditRecord
from tests.factories import StaffFactory, UserFactory, grant
from topups.models import TopUp, TrialAward
from topups.services.orders import start_topup
from topups.services.remittances import confirm_remittance
from topups.services.trials import approve_verification

pytestmark = pytest.mark.django_db

PHONE = "13912345678"
BIRTH = date(1988, 2, 29)
NUMBER = make_resident_id(BIRTH, sequence=432)


def _raw(table, column, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def _individual(user, number=NUMBER):
    return submit_verification(
        user, kind="individual", legal_name="Li Ming", id_number=number, phone=PHONE
    )


def test_phone_and_birth_date_are_encrypted_at_rest():
    """R-ACC-5: the user's phone, the verification's phone and birth date are Fernet tokens
    in the database; Python sees them plain."""
    user = UserFactory(phone=PHONE)
    v = _individual(user)
    assert PHONE not in _raw("accounts_user", "phone", user.pk)
    assert PHONE not in _raw("accounts_verification", "phone", v.pk)
    raw_birth = str(_raw("accounts_verification", "birth_date", v.pk))
    assert "1988" not in raw_birth and "02-29" not in raw_birth
    v = Verification.objects.get(pk=v.pk)
    assert v.birth_date == BIRTH and v.phone == PHONE
    assert User.objects.get(pk=user.pk).phone == PHONE


def test_staff_still_find_a_user_by_full_phone_number(admin_client):
    """R-ACC-5 with R-ADM-3: an encrypted phone is still found by its full number (keyed
    digest), in the ORM and in admin search; a fragment finds nothing."""
    user = UserFactory(phone=PHONE)
    UserFactory(phone="13700000000")
    assert list(User.objects.filter(phone=PHONE)) == [user]
    assert list(User.objects.filter(phone__icontains=" 139 1234 5678")) == [user]
    assert not User.objects.filter(phone__icontains="1391").exists()
    body = admin_client.get("/admin/accounts/user/", {"q": PHONE}).content.decode()
    assert user.email in body and "13700000000" not in body


def _paid_bank_topup(user):
    finance = grant(StaffFactory(), "topups.confirm_remittance", "topups.view_topup")
    order = start_topup(user, "100.00", channel="bank")
    return confirm_remittance(
        order,
        actor=finance,
        received_amount="100.00",
        payer_name="Wang Wu Trading Co.",
        payer_account="6222 0200 1234 5678",
        bank_reference="BK-ENC-1",
    )


def test_payer_name_and_account_are_encrypted_in_the_topup_and_its_audit(ready_user):
    """R-ACC-5: the top-up row and its audit details hold the payer only encrypted."""
    topup = _paid_bank_topup(ready_user)
    for column in ("payer_name", "payer_account"):
        raw = _raw("topups_topup", column, topup.pk)
        assert "Wang Wu" not in raw and "6222" not in raw
    topup = TopUp.objects.get(pk=topup.pk)
    assert topup.payer_name == "Wang Wu Trading Co."
    audit = AuditRecord.objects.get(object_id=str(topup.pk), action="confirm_remittance")
    with connection.cursor() as cursor:
        cursor.execute("SELECT details FROM core_auditrecord WHERE id = %s", [audit.pk])
        raw_details = str(cursor.fetchone()[0])
    assert "Wang Wu" not in raw_details and "6222 0200" not in raw_details
    assert audit.details["payer_name"].startswith(SEALED_PREFIX)
    assert unseal(audit.details["payer_account"]) == "6222 0200 1234 5678"


def test_rotation_retires_the_old_keys_end_to_end(ready_user, settings, tmp_path):
    """R-ACC-5: after `rotate_keys` under a new first key and a new identity key, the old
    keys are removed and everything still reads: names, numbers, phones, birth dates,
    payers, sealed audit details, licence files; identities re-hashed everywhere
    (verifications and trial awards), so R-ACC-4 still holds under the new key."""
    from tests.topups.conftest import submit

    old_hash_key = settings.IDENTITY_HASH_KEY
    customer = UserFactory(phone=PHONE)
    v = _individual(customer)
    approve_verification(v)  # trial award under the old identity key
    company = submit(UserFactory(), kind="enterprise")
    topup = _paid_bank_topup(ready_user)
    old_award_hash = TrialAward.objects.get(account__user=customer).identity_hash
    assert old_award_hash == identity_hash("individual", NUMBER)

    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]
    settings.IDENTITY_HASH_KEY = "new-identity-key-" + "x" * 40
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "opens with the first key alone" in out.getvalue()

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is retired
    v = Verification.objects.get(pk=v.pk)
    assert (v.id_number, v.legal_name, v.phone, v.birth_date) == (NUMBER, "Li Ming", PHONE, BIRTH)
    assert User.objects.get(pk=customer.pk).phone == PHONE
    assert User.objects.filter(phone=PHONE).get() == customer  # digest under the new key
    topup = TopUp.objects.get(pk=topup.pk)
    assert topup.payer_account == "6222 0200 1234 5678"
    audit = AuditRecord.objects.get(object_id=str(topup.pk), action="confirm_remittance")
    assert unseal(audit.details["payer_name"]) == "Wang Wu Trading Co."
    company = Verification.objects.get(pk=company.pk)
    assert company.licence_file.storage.open_plain(company.licence_file.name).startswith(b"%PDF")

    new_hash = identity_hash("individual", NUMBER)
    assert new_hash != old_award_hash
    assert v.identity_hash == new_hash
    assert TrialAward.objects.get(account__user=customer).identity_hash == new_hash
    # no ledger key carries an identity hash that would outlive the rotation
    from billing.models import Grant, LedgerTransaction

    assert not Grant.objects.filter(idempotency_key__contains=old_award_hash).exists()
    assert not LedgerTransaction.objects.filter(idempotency_key__contains=old_award_hash).exists()
    settings.IDENTITY_MAX_ACCOUNTS = 1
    with pytest.raises(ValidationError) as err:
        _individual(UserFactory(), number=NUMBER)
    assert err.value.code == "identity_taken"
    assert old_hash_key != settings.IDENTITY_HASH_KEY


def test_rotation_refuses_to_bless_values_the_first_key_cannot_open(user, settings):
    """R-ACC-5: a value written under a key that is not in FIELD_ENCRYPTION_KEYS makes the
    command fail rather than claim the old key can be retired."""
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management.base import CommandError

    _individual(user)
    stray = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_verification SET company_name = %s", [stray])
    with pytest.raises((CommandError, ImproperlyConfigured)):
        call_command("rotate_keys")


def test_lot_payer_is_encrypted_at_rest(ready_user):
    """R-ACC-5: the ledger lot keeps the payer only encrypted, like the top-up."""
    topup = _paid_bank_topup(ready_user)
    for column in ("payer_name", "payer_account"):
        raw = _raw("billing_lot", column, topup.lot_id)
        assert "Wang Wu" not in raw and "6222" not in raw
