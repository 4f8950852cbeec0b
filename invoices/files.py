"""The electronic invoice files finance uploads (R-INV-4), checked by content (size and
kind by the one store for case files, accounts.proof_files):

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

import re
import xml.etree.ElementTree as ET  # noqa: S405 (DOCTYPE and entities refused first, below)
from decimal import Decimal, InvalidOperation
from xml.parsers import expat

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from accounts import proof_files

from .models import FileKind

FIELDS = {
    "invoice_number": ("InvoiceNumber", "EIid", "Fphm"),
    "buyer_name": ("BuyerName", "Gmfmc"),
    "buyer_taxpayer_id": ("BuyerIdNum", "BuyerTaxID", "Gmfnsrsbh"),
    "total": ("TotalTax-includedAmount", "TotalTaxIncludedAmount", "Jshj"),
    "issue_date": ("IssueTime", "Kprq"),
}
DIGITAL_NUMBER = re.compile(r"^\d{20}$")


def check_file(upload, kind) -> bytes:
    """The upload's bytes if its content is the `kind` it was given as (and its name does
    not claim another kind; the one store's check, accounts.proof_files), and an XML
    is readable; or ValidationError."""
    data = proof_files.check_invoice_file(upload, kind).data
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
