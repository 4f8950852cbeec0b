"""Personal data encrypted at rest (R-ACC-5).

Fernet keys come from settings.FIELD_ENCRYPTION_KEYS: the first key encrypts,
every key decrypts (MultiFernet), so keys can be rotated by prepending a new
one. Text goes through `EncryptedTextField`; uploaded documents through
`EncryptedFileStorage`, which has no public URL: files are served only by the
permission-checked download view.
"""

import os
import uuid
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext as _


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty")
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_bytes(data: bytes) -> bytes:
    return fernet().encrypt(data)


def decrypt_bytes(token: bytes) -> bytes:
    return fernet().decrypt(token)


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python sees the plain text.

    Not searchable or orderable by content, by design. Empty strings are kept
    empty (nothing to protect, and forms stay simple).
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return decrypt_bytes(value.encode()).decode()
        except InvalidToken:
            # A missing key must not leak the token into pages as if it were data.
            raise ImproperlyConfigured("Cannot decrypt a field: FIELD_ENCRYPTION_KEYS is wrong")

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt_bytes(str(value).encode()).decode()


class IdentityHashField(models.CharField):
    """A keyed hash of an identity (accounts.identity.identity_hash), wherever it is kept.

    The key-rotation command finds every such column across apps by this class and
    maps old hashes to new ones, so an app above accounts keeps its identity rows
    (trial awards) without accounts knowing it.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)


class EncryptedPhoneField(EncryptedTextField):
    """A phone number encrypted at rest, with a keyed digest beside it (`digest_field`).

    The digest is written on every save, and lookups on the phone (`phone=…`,
    `user__phone__icontains=…`, what admin search sends) compare digests: a phone is
    found by its full number, never by a fragment.
    """

    description = "Phone number encrypted at rest, found by its keyed digest"

    def __init__(self, *args, digest_field="phone_digest", **kwargs):
        self.digest_field = digest_field
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["digest_field"] = self.digest_field
        return name, path, args, kwargs

    def pre_save(self, model_instance, add):
        value = super().pre_save(model_instance, add)
        setattr(model_instance, self.digest_field, self.digest(value))
        return value

    @staticmethod
    def digest(value):
        from .identity import phone_digest

        return phone_digest(value or "")

    def formfield(self, **kwargs):
        from django import forms

        return forms.CharField(
            max_length=self.max_length or 20,
            required=not self.blank,
            label=kwargs.get("label", self.verbose_name.capitalize()),
            help_text=self.help_text,
        )


class _PhoneDigestLookup(models.Lookup):
    """`phone <op> value` as `phone_digest = digest(value)` on the same row."""

    prepare_rhs = False

    def as_sql(self, compiler, connection):
        from django.db.models.expressions import Col

        field = self.lhs.target
        digest = field.model._meta.get_field(field.digest_field)
        lhs_sql, lhs_params = compiler.compile(Col(self.lhs.alias, digest))
        wanted = field.digest(str(self.rhs or ""))
        if not wanted and self.lookup_name not in ("exact", "iexact"):
            wanted = "-"  # a search term without digits finds no phone (never a digest)
        return f"{lhs_sql} = %s", [*lhs_params, wanted]


for _name in ("exact", "iexact", "contains", "icontains", "startswith", "istartswith"):
    EncryptedPhoneField.register_lookup(
        type(f"PhoneDigest_{_name}", (_PhoneDigestLookup,), {"lookup_name": _name})
    )


class EncryptedDateField(EncryptedTextField):
    """A date encrypted at rest (a birth date); Python sees a `datetime.date`.

    Stored as the Fernet token of its ISO text; not filterable by value.
    """

    description = "Date encrypted at rest"

    def from_db_value(self, value, expression, connection):
        text = super().from_db_value(value, expression, connection)
        return _to_date(text)

    def to_python(self, value):
        return _to_date(value)

    def get_prep_value(self, value):
        if value in (None, ""):
            return None
        value = _to_date(value)
        return encrypt_bytes(value.isoformat().encode()).decode()

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return value.isoformat() if value else ""


def _to_date(value):
    from datetime import date, datetime

    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(_("Enter a valid date."), code="invalid_date")


def is_token(value) -> bool:
    """Whether a stored text is a Fernet token one of our keys opens."""
    try:
        decrypt_bytes(value.encode())
    except (InvalidToken, ValueError, TypeError):
        return False
    return True


def encrypt_columns_in_place(connection, table, columns, *, batch_size=1000):
    """Data migrations: encrypt the plain values of `columns` in `table` (by id), leaving
    empty values and values already encrypted alone, so the step can run twice.

    Raw SQL on purpose: the model's field would try to decrypt the plain values.
    Returns how many rows changed.
    """
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    changed, last = 0, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                # names come from the migration's code, quoted; values are parameters
                f"SELECT id, {cols} FROM {qn(table)} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                [last, batch_size],
            )
            rows = cursor.fetchall()
        if not rows:
            return changed
        for row in rows:
            last = row[0]
            updates = {}
            for column, value in zip(columns, row[1:], strict=True):
                if value in (None, "") or is_token(str(value)):
                    continue
                updates[column] = encrypt_bytes(str(value).encode()).decode()
            if updates:
                sets = ", ".join(f"{qn(c)} = %s" for c in updates)
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {qn(table)} SET {sets} WHERE id = %s",  # noqa: S608
                        [*updates.values(), last],
                    )
                changed += 1


def decrypt_columns_in_place(connection, table, columns):
    """Data migrations, backwards: the plain values again (before the column goes back to
    its old type). Values that are not tokens are left alone."""
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {cols} FROM {qn(table)}")  # noqa: S608 (names)
        rows = cursor.fetchall()
    for pk, *values in rows:
        updates = {
            column: decrypt_bytes(str(value).encode()).decode()
            for column, value in zip(columns, values, strict=True)
            if value not in (None, "") and is_token(str(value))
        }
        if updates:
            sets = ", ".join(f"{qn(c)} = %s" for c in updates)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {qn(table)} SET {sets} WHERE id = %s",  # noqa: S608
                    [*updates.values(), pk],
                )
    return len(rows)


def digest_phones_in_place(connection, table, *, column="phone", digest_column="phone_digest"):
    """Data migrations: write the keyed digest of every row's phone (plain or encrypted)."""
    from .identity import phone_digest

    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {qn(column)} FROM {qn(table)}")  # noqa: S608 (names)
        rows = cursor.fetchall()
    for pk, value in rows:
        value = value or ""
        if value and is_token(value):
            value = decrypt_bytes(value.encode()).decode()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {qn(table)} SET {qn(digest_column)} = %s WHERE id = %s",  # noqa: S608
                [phone_digest(value), pk],
            )
    return len(rows)


def seal_audit_details_in_place(apps, app_label, model, keys):
    """Data migrations: seal the personal `keys` in the audit details of one model's rows."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    AuditRecord = apps.get_model("core", "AuditRecord")
    ct = ContentType.objects.filter(app_label=app_label, model=model).first()
    if ct is None:
        return 0
    changed = 0
    for record in AuditRecord.objects.filter(content_type=ct).only("details").iterator():
        details = dict(record.details or {})
        touched = False
        for key in keys:
            value = details.get(key)
            if isinstance(value, str) and value and not value.startswith(SEALED_PREFIX):
                details[key] = seal(value)
                touched = True
        if touched:
            AuditRecord.objects.filter(pk=record.pk).update(details=details)
            changed += 1
    return changed


# ---------------------------------------------------------------- sealed values
# Personal data that must sit in a JSON column (an audit row's details) is kept as
# "enc:<Fernet token>"; the key-rotation command re-encrypts these too.
SEALED_PREFIX = "enc:"


def seal(value) -> str:
    """Encrypt a text for a JSON column; empty stays empty."""
    text = "" if value is None else str(value)
    if not text or text.startswith(SEALED_PREFIX):
        return text
    return SEALED_PREFIX + encrypt_bytes(text.encode()).decode()


def unseal(value) -> str:
    """The plain text of a sealed value (a value that is not sealed is returned as is)."""
    if not isinstance(value, str) or not value.startswith(SEALED_PREFIX):
        return value
    try:
        return decrypt_bytes(value[len(SEALED_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("Cannot decrypt a sealed value: FIELD_ENCRYPTION_KEYS is wrong")


def reseal(value):
    """A sealed value re-encrypted under the first key (key rotation); others unchanged."""
    if not isinstance(value, str) or not value.startswith(SEALED_PREFIX):
        return value
    token = fernet().rotate(value[len(SEALED_PREFIX) :].encode())
    return SEALED_PREFIX + token.decode()


@deconstructible
class EncryptedFileStorage(FileSystemStorage):
    """Files encrypted with Fernet on disk, outside any public URL."""

    def __init__(self, subdir="private"):
        self.subdir = subdir
        super().__init__()

    @property
    def base_location(self):
        # Follows MEDIA_ROOT at call time (tests point it at a temporary folder).
        return os.path.join(settings.MEDIA_ROOT, self.subdir)

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    def _save(self, name, content):
        content.seek(0)
        token = encrypt_bytes(content.read())
        return super()._save(name, ContentFile(token))

    def open_plain(self, name) -> bytes:
        with super().open(name, "rb") as fh:
            return decrypt_bytes(fh.read())

    def rotate(self, name) -> None:
        """Re-encrypt a stored file under the first key (key rotation), in place."""
        path = self.path(name)
        with open(path, "rb") as fh:
            token = fh.read()
        fresh = fernet().rotate(token)
        if fresh != token:
            tmp = f"{path}.rotating"
            with open(tmp, "wb") as fh:
                fh.write(fresh)
            os.replace(tmp, path)

    def url(self, name):
        raise ValueError("Encrypted documents have no public URL; use the download view.")

    def deconstruct(self):
        return ("accounts.crypto.EncryptedFileStorage", (), {"subdir": self.subdir})


private_storage = EncryptedFileStorage()


# ---------------------------------------------------------------- uploads
# Only these documents are accepted, recognised by their first bytes (the
# client's file name and content type are not trusted).
MAGIC = (
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)
ALLOWED_EXTENSIONS = {"pdf": "pdf", "jpg": "jpg", "jpeg": "jpg", "png": "png"}
CONTENT_TYPES = {ext: content_type for _, content_type, ext in MAGIC}


def document_name(prefix, filename):
    """Random file names: the user's own file name may itself be personal data."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"{prefix}/{uuid.uuid4().hex}.{ALLOWED_EXTENSIONS.get(ext, 'bin')}.enc"


def licence_upload_to(instance, filename):
    return document_name("licences", filename)


def evidence_upload_to(instance, filename):
    return document_name("evidence", filename)
