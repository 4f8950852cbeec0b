"""The one store for the files attached to a case: refund proofs, dispute evidence and
debt proofs, invoice title proofs and the invoice files the tax platform returned.

- **Checked before anything is written**, here and nowhere else: at most
  `settings.UPLOAD_MAX_BYTES` and not empty, the kind told by the content's first bytes
  (never by the client's file name or content type), and a name that does not claim
  another kind. Proofs and evidence are documents (PDF, JPEG, PNG, `check_document`);
  invoice files are PDF, OFD (a zip holding OFD.xml) or XML (`check_invoice_file`).
- **Stored encrypted** (Fernet, `accounts.crypto.private_storage`, no public URL) under a
  random name in the case's folder (`stored_name`): the user's file name may itself be
  personal data.
- **Read back** decrypted (`read`) only by the owning app's service, which checks the
  permission and writes the audit record.

Real-name verification documents (business licences, own-income evidence) are checked
here too (`check_document`).
"""

import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils.translation import gettext as _

from .crypto import MAGIC, private_storage

storage = private_storage

PDF, JPEG, PNG, OFD, XML = "pdf", "jpg", "png", "ofd", "xml"
DOCUMENTS = (PDF, JPEG, PNG)
INVOICE_FILES = (PDF, OFD, XML)
CONTENT_TYPES = {
    PDF: "application/pdf",
    JPEG: "image/jpeg",
    PNG: "image/png",
    OFD: "application/ofd",
    XML: "application/xml",
}
# what a file name's extension claims
NAMED = {"pdf": PDF, "jpg": JPEG, "jpeg": JPEG, "png": PNG, "ofd": OFD, "xml": XML}


@dataclass(frozen=True)
class Checked:
    """An upload that passed the checks: its kind and its bytes."""

    kind: str
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.kind]

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def sniff(data: bytes) -> str | None:
    """The kind of a file by its content (one of CONTENT_TYPES), or None."""
    for magic, _content_type, ext in MAGIC:
        if data.startswith(magic):
            return ext
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = {n.rsplit("/", 1)[-1].lower() for n in archive.namelist()}
        except zipfile.BadZipFile:
            return None
        return OFD if "ofd.xml" in names else None
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return XML
    return None


def _claimed(upload) -> str | None:
    """The kind the upload's name claims: "" without an extension, None for one we do
    not know."""
    name = (getattr(upload, "name", "") or "").lower()
    if "." not in name:
        return ""
    return NAMED.get(name.rsplit(".", 1)[-1])


def read_upload(upload) -> bytes:
    """The upload's bytes: refused when over settings.UPLOAD_MAX_BYTES or empty."""
    limit = settings.UPLOAD_MAX_BYTES
    if upload.size is None or upload.size > limit:
        raise ValidationError(
            _("The file is larger than %(mb)s MB."),
            code="file_too_large",
            params={"mb": round(limit / 1024 / 1024, 1)},
        )
    upload.seek(0)
    data = upload.read()
    upload.seek(0)
    if not data:
        raise ValidationError(_("The file is empty."), code="file_empty")
    return data


def check_document(upload) -> Checked:
    """A proof or evidence file: PDF, JPEG or PNG by content, named as what it is."""
    data = read_upload(upload)
    kind = sniff(data)
    if kind not in DOCUMENTS or _claimed(upload) != kind:
        raise ValidationError(
            _("Only PDF, JPEG or PNG files are accepted (checked by content)."),
            code="file_type",
        )
    return Checked(kind, data)


def check_invoice_file(upload, kind) -> Checked:
    """An invoice file the tax platform returned, given as `kind` (PDF, OFD or XML): its
    content is that kind and its name, if it has an extension, does not claim another."""
    data = read_upload(upload)
    claimed = _claimed(upload)
    if kind not in INVOICE_FILES or sniff(data) != kind or claimed not in ("", kind):
        raise ValidationError(
            _("The %(kind)s file is not a %(kind)s invoice (checked by its content).")
            % {"kind": str(kind).upper()},
            code="file_type",
        )
    return Checked(kind, data)


def stored_name(folder, filename) -> str:
    """A random name in `folder` (what the models' upload_to return), keeping only the
    kind the checked file was saved as."""
    kind = NAMED.get(filename.rsplit(".", 1)[-1].lower(), "bin") if "." in filename else "bin"
    return f"{folder}/{uuid.uuid4().hex}.{kind}.enc"


def save(field_file, checked: Checked, *, stem="file") -> None:
    """Write a checked file, encrypted, into a model's FileField (the row is saved by
    the caller)."""
    field_file.save(f"{stem}.{checked.kind}", ContentFile(checked.data), save=False)


def read(field_file) -> bytes:
    """The decrypted bytes of a stored file (the caller has checked the permission)."""
    return field_file.storage.open_plain(field_file.name)


def extension(content_type) -> str:
    """The file extension for a stored content type ("bin" when unknown)."""
    return next((kind for kind, ct in CONTENT_TYPES.items() if ct == content_type), "bin")
