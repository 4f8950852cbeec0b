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


def sniff(head: bytes):
    for magic, content_type, ext in MAGIC:
        if head.startswith(magic):
            return content_type, ext
    return None, None


def validate_upload(upload):
    """Refuse files over settings.UPLOAD_MAX_BYTES or not PDF/JPEG/PNG; return the extension."""
    limit = settings.UPLOAD_MAX_BYTES
    if upload.size is None or upload.size > limit:
        raise ValidationError(
            _("The file is larger than %(mb)s MB."),
            code="file_too_large",
            params={"mb": round(limit / 1024 / 1024, 1)},
        )
    if upload.size == 0:
        raise ValidationError(_("The file is empty."), code="file_empty")
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    _content_type, ext = sniff(head)
    claimed = (upload.name or "").rsplit(".", 1)[-1].lower() if "." in (upload.name or "") else ""
    if ext is None or ALLOWED_EXTENSIONS.get(claimed) != ext:
        raise ValidationError(
            _("Only PDF, JPEG or PNG files are accepted (checked by content)."),
            code="file_type",
        )
    return ext


def _document_name(prefix, filename):
    """Random file names: the user's own file name may itself be personal data."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"{prefix}/{uuid.uuid4().hex}.{ALLOWED_EXTENSIONS.get(ext, 'bin')}.enc"


def licence_upload_to(instance, filename):
    return _document_name("licences", filename)


def evidence_upload_to(instance, filename):
    return _document_name("evidence", filename)
