"""Key rotation for personal data (R-ACC-5): re-encrypt under the first key, re-hash
identities under the current IDENTITY_HASH_KEY, so old keys can be retired.

Steps (docs in the root README, "Rotating the personal-data keys"):

1. Put a new Fernet key first in FIELD_ENCRYPTION_KEYS, keep the old ones after it,
   and set IDENTITY_HASH_KEY to a new random value; restart the portal.
2. `python manage.py rotate_keys`: every encrypted column of every app (found by
   field class, so any app's EncryptedTextField is covered), every encrypted file,
   every sealed audit detail, phone digests and identity hashes (every
   IdentityHashField of every app, old hash → new hash by the verification it
   belongs to). It then proves every value opens with the first key alone.
3. Remove the old keys from FIELD_ENCRYPTION_KEYS and restart.

Safe to run twice; each batch is its own transaction, the identity step one
transaction for all (identities must never be counted under two keys at once).
"""

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction

from accounts.crypto import (
    SEALED_PREFIX,
    EncryptedFileStorage,
    EncryptedPhoneField,
    EncryptedTextField,
    IdentityHashField,
    reseal,
)
from accounts.identity import KIND_INDIVIDUAL, identity_hash

BATCH = 500


def encrypted_fields():
    """[(model, [EncryptedTextField…])] across every installed app."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        fields = [
            f
            for f in model._meta.concrete_fields
            if isinstance(f, EncryptedTextField) and f.model is model
        ]
        if fields:
            found.append((model, fields))
    return found


def encrypted_file_fields():
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, models.FileField) and isinstance(f.storage, EncryptedFileStorage):
                found.append((model, f))
    return found


def identity_hash_fields():
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, IdentityHashField) and f.model is model:
                found.append((model, f))
    return found


def _batches(queryset):
    last = 0
    while True:
        rows = list(queryset.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not rows:
            return
        yield rows
        last = rows[-1].pk if hasattr(rows[-1], "pk") else rows[-1][0]


def reencrypt_fields():
    """Every encrypted column: read (any key), write back (first key). Phone digests are
    recomputed on the way, under the current IDENTITY_HASH_KEY."""
    counts = {}
    for model, fields in encrypted_fields():
        names = [f.attname for f in fields]
        manager = model._base_manager
        n = 0
        for rows in _batches(manager.values_list("pk", *names)):
            with transaction.atomic():
                for pk, *values in rows:
                    changes = dict(zip(names, values, strict=True))
                    for f in fields:
                        if isinstance(f, EncryptedPhoneField):
                            changes[f.digest_field] = f.digest(changes[f.attname])
                    manager.filter(pk=pk).update(**changes)
                    n += 1
        counts[model._meta.label] = n
    return counts


def reencrypt_files():
    n = 0
    for model, f in encrypted_file_fields():
        names = (
            model._base_manager.exclude(**{f.attname: ""})
            .exclude(**{f"{f.attname}__isnull": True})
            .values_list(f.attname, flat=True)
        )
        for name in names.iterator():
            if f.storage.exists(name):
                f.storage.rotate(name)
                n += 1
    return n


def reseal_audit_details():
    from core.models import AuditRecord

    n = 0
    queryset = AuditRecord.objects.filter(details__icontains=SEALED_PREFIX)
    for rows in _batches(queryset.values_list("pk", "details")):
        with transaction.atomic():
            for pk, details in rows:
                fresh = {k: reseal(v) for k, v in (details or {}).items()}
                if fresh != details:
                    AuditRecord.objects.filter(pk=pk).update(details=fresh)
                    n += 1
    return n


def rehash_identities():
    """Old hash → new hash from each verification's own number; every IdentityHashField
    of every app follows the map. One transaction."""
    from accounts.models import Verification

    with transaction.atomic():
        mapping = {}
        for v in Verification.objects.select_for_update().order_by("pk").iterator():
            number = v.id_number if v.kind == KIND_INDIVIDUAL else v.credit_code
            if not number:
                continue
            new = identity_hash(v.kind, number)
            if v.identity_hash != new:
                mapping[v.identity_hash] = new
        moved = {}
        for model, f in identity_hash_fields():
            n = 0
            for old, new in mapping.items():
                n += model._base_manager.filter(**{f.attname: old}).update(**{f.attname: new})
            moved[f"{model._meta.label}.{f.name}"] = n
    return len(mapping), moved


def unreadable_with_first_key():
    """Values (columns, files, sealed details) the first key alone cannot open."""
    from core.models import AuditRecord

    first = Fernet(settings.FIELD_ENCRYPTION_KEYS[0])
    bad = 0

    def opens(token):
        try:
            first.decrypt(token)
        except (InvalidToken, ValueError, TypeError):
            return False
        return True

    qn = connection.ops.quote_name
    for model, fields in encrypted_fields():
        for f in fields:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {qn(f.column)} FROM {qn(model._meta.db_table)} "  # noqa: S608
                    f"WHERE {qn(f.column)} IS NOT NULL AND {qn(f.column)} <> ''"
                )
                bad += sum(1 for (raw,) in cursor.fetchall() if not opens(raw.encode()))
    for model, f in encrypted_file_fields():
        for name in model._base_manager.exclude(**{f.attname: ""}).values_list(
            f.attname, flat=True
        ):
            if name and f.storage.exists(name):
                with open(f.storage.path(name), "rb") as fh:
                    bad += not opens(fh.read())
    for details in AuditRecord.objects.filter(details__icontains=SEALED_PREFIX).values_list(
        "details", flat=True
    ):
        for value in (details or {}).values():
            if isinstance(value, str) and value.startswith(SEALED_PREFIX):
                bad += not opens(value[len(SEALED_PREFIX) :].encode())
    return bad


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field, file and sealed audit detail under the first "
        "FIELD_ENCRYPTION_KEYS key and re-hash identities and phone digests under the "
        "current IDENTITY_HASH_KEY, so old keys can be retired."
    )

    def handle(self, *args, **options):
        if not settings.FIELD_ENCRYPTION_KEYS or not settings.IDENTITY_HASH_KEY:
            raise CommandError("FIELD_ENCRYPTION_KEYS and IDENTITY_HASH_KEY must be set.")
        for label, n in reencrypt_fields().items():
            self.stdout.write(f"re-encrypted {n} rows of {label}")
        self.stdout.write(f"re-encrypted {reencrypt_files()} files")
        self.stdout.write(f"re-sealed {reseal_audit_details()} audit records")
        changed, moved = rehash_identities()
        self.stdout.write(f"re-hashed {changed} identities")
        for label, n in moved.items():
            self.stdout.write(f"  {label}: {n} rows")
        bad = unreadable_with_first_key()
        if bad:
            raise CommandError(f"{bad} values do not open with the first key; keep the old keys.")
        self.stdout.write(self.style.SUCCESS("Every value opens with the first key alone."))
