"""The electronic invoice files finance uploads (R-INV-4), checked by content.

- PDF: starts with ``%PDF-``.
- OFD (GB/T 33190): a zip archive whose entries include ``OFD.xml``; its content is not
  read (no OFD package is pinned; the XML carries the fields that are checked).
- XML: the tax platform's fully digital invoice (数电发票) file, parsed with the
  standard library. Before parsing, a first pass with ``xml.parsers.expat`` refuses any
  DOCTYPE or entity declaration (what defusedxml guards against: entity expansion and
  external entities), so ElementTree only ever sees a plain document.

The fields are found by element name wherever they sit, namespaces ignored, first
match wins, in this order of names:

    invoice number       InvoiceNumber, EIid, Fphm
    buyer name           BuyerName, Gmfmc
    buyer taxpayer id    BuyerIdNum, BuyerTaxID, Gmfnsrsbh
    total including tax  TotalTax-includedAmount, TotalTaxIncludedAmount, Jshj
    issue date           IssueTime, Kprq
"""

import io
import re
import xml.etree.ElementTree as ET  # noqa: S405 (DOCTYPE and entities refused first, below)
import zipfile
from decimal import Decimal, InvalidOperation
from xml.parsers import expat

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .models import FileKind

FIELDS = {
    "invoice_number": ("InvoiceNumber", "EIid", "Fphm"),
    "buyer_name": ("BuyerName", "Gmfmc"),
    "buyer_taxpayer_id": ("BuyerIdNum", "BuyerTaxID", "Gmfnsrsbh"),
    "total": ("TotalTax-includedAmount", "TotalTaxIncludedAmount", "Jshj"),
    "issue_date": ("IssueTime", "Kprq"),
}
DIGITAL_NUMBER = re.compile(r"^\d{20}$")


def read_upload(upload) -> bytes:
    """The bytes of an upload within settings.UPLOAD_MAX_BYTES, or ValidationError."""
    limit = settings.UPLOAD_MAX_BYTES
    if upload.size is None or upload.size > limit:
        raise ValidationError(
            _("The file is larger than %(mb)s MB.") % {"mb": round(limit / 1024 / 1024, 1)},
            code="file_too_large",
        )
    upload.seek(0)
    data = upload.read()
    upload.seek(0)
    if not data:
        raise ValidationError(_("The file is empty."), code="file_empty")
    return data


def sniff(data: bytes):
    """The kind of an invoice file by its content, or None."""
    if data.startswith(b"%PDF-"):
        return FileKind.PDF
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = {n.rsplit("/", 1)[-1].lower() for n in archive.namelist()}
        except zipfile.BadZipFile:
            return None
        return FileKind.OFD if "ofd.xml" in names else None
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:5]
    if head.startswith(b"<"):
        return FileKind.XML
    return None


def check_file(upload, kind) -> bytes:
    """The upload's bytes if its content is the `kind` it was given as (and its name does
    not claim another kind), or ValidationError."""
    data = read_upload(upload)
    found = sniff(data)
    name = (upload.name or "").lower()
    claimed = name.rsplit(".", 1)[-1] if "." in name else ""
    if found != kind or (claimed and claimed != kind):
        raise ValidationError(
            _("The %(kind)s file is not a %(kind)s invoice (checked by its content).")
            % {"kind": kind.upper()},
            code="file_type",
        )
    if kind == FileKind.XML:
        parse_invoice_xml(data)
    return data


def _refuse(*args):
    raise ValidationError(
        _("The XML declares a DOCTYPE or entities, which are not accepted."), code="xml_doctype"
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse_invoice_xml(data: bytes) -> dict:
    """{field: text} read from an invoice XML (see FIELDS), or ValidationError."""
    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = _refuse
    guard.EntityDeclHandler = _refuse
    guard.UnparsedEntityDeclHandler = _refuse
    guard.ExternalEntityRefHandler = _refuse
    try:
        guard.Parse(data, True)
    except expat.ExpatError:
        raise ValidationError(_("The XML file cannot be read."), code="xml_invalid")
    try:
        root = ET.fromstring(data)  # noqa: S314 (no DOCTYPE, checked above)
    except ET.ParseError:
        raise ValidationError(_("The XML file cannot be read."), code="xml_invalid")
    found = {}
    texts = {}
    for element in root.iter():
        name = _local(element.tag)
        if name not in texts and element.text and element.text.strip():
            texts[name] = element.text.strip()
    for field, names in FIELDS.items():
        found[field] = next((texts[n] for n in names if n in texts), "")
    return found


def decimal_or_none(text):
    try:
        value = Decimal(str(text).replace(",", "").strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def compare(fields: dict, *, title, taxpayer_id, amount, invoice_number="") -> list:
    """Rows (label, read from the XML, expected by the request, matches) for finance."""
    total = decimal_or_none(fields.get("total"))
    number = fields.get("invoice_number", "")
    return [
        (
            _("Invoice number (20 digits)"),
            number,
            invoice_number or _("(20 digits)"),
            bool(DIGITAL_NUMBER.match(number)) and (not invoice_number or number == invoice_number),
        ),
        (_("Buyer name"), fields.get("buyer_name", ""), title, fields.get("buyer_name") == title),
        (
            _("Buyer taxpayer id"),
            fields.get("buyer_taxpayer_id", ""),
            taxpayer_id,
            (fields.get("buyer_taxpayer_id") or "").upper() == (taxpayer_id or "").upper(),
        ),
        (
            _("Total including tax"),
            fields.get("total", ""),
            f"{amount:.2f}",
            total is not None and total == amount,
        ),
    ]
