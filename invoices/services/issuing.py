"""Issuing, rejecting and reversing invoice requests (R-INV-2, R-INV-4), and serving
the issued files; InvoiceRequest's transition map.

Issuing records what the tax platform returned: the electronic invoice as PDF, OFD
and/or XML, each checked by content. When the XML is given its invoice number (20
digits, a fully digital invoice), buyer name, buyer taxpayer id and total including tax
must match the request, or nothing is issued. Rejection releases the reserved amount;
a red-letter reversal makes the amount invoiceable again (R-INV-1).
"""

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import proof_files
from core.workflow import apply_transition, record_audit, transition_map

from ..files import DIGITAL_NUMBER, check_file, compare, parse_invoice_xml
from ..models import FileKind, InvoiceFile, InvoiceRequest, InvoiceState, RedLetterReason
from ._common import tell

FILE_PERM = "invoices.view_invoice_file"


def _not_own_case(invoice_request, actor):
    """R-ADM-4: staff never decide their own invoice requests."""
    if actor is not None and actor.pk == invoice_request.account.user_id:
        raise PermissionDenied(_("Staff never act on their own cases."))


def xml_check(invoice_request, xml_upload, *, invoice_number=""):
    """(fields read, comparison rows) of an invoice XML against `invoice_request`, for finance to
    see before issuing; raises ValidationError when the file is not a readable XML."""
    data = check_file(xml_upload, FileKind.XML)
    fields = parse_invoice_xml(data)
    rows = compare(
        fields,
        title=invoice_request.title,
        taxpayer_id=invoice_request.taxpayer_id,
        amount=invoice_request.amount.amount,
        invoice_number=(invoice_number or "").strip(),
    )
    return fields, rows


def _issue_date(value, fields):
    if value:
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
        try:
            return datetime.date.fromisoformat(str(value)[:10])
        except ValueError:
            raise ValidationError(_("The issue date is not a date."), code="issue_date")
    text = (fields or {}).get("issue_date", "")
    try:
        return datetime.date.fromisoformat(text[:10])
    except ValueError:
        return timezone.localdate()


def issue_invoice(
    invoice_request,
    *,
    actor,
    reason="",
    invoice_number="",
    issued_on=None,
    pdf=None,
    ofd=None,
    xml=None,
    **_unused,
) -> InvoiceRequest:
    """Mark a submitted request issued with the tax platform's files (R-INV-4).

    Refused, changing nothing: no file; a file that is not what it was given as; an XML
    whose number, buyer name, buyer taxpayer id or total differs from the request; no
    20-digit invoice number; a request not submitted (issuing twice); no permission.
    """
    _not_own_case(invoice_request, actor)
    uploads = {FileKind.PDF: pdf, FileKind.OFD: ofd, FileKind.XML: xml}
    uploads = {kind: f for kind, f in uploads.items() if f}
    if not uploads:
        raise ValidationError(
            _("Upload the invoice the tax platform returned (PDF, OFD or XML)."),
            code="file_required",
        )
    contents = {kind: check_file(upload, kind) for kind, upload in uploads.items()}
    number = (invoice_number or "").strip()
    fields = {}
    if FileKind.XML in contents:
        fields, rows = xml_check(invoice_request, uploads[FileKind.XML], invoice_number=number)
        wrong = [str(label) for label, _read, _expected, ok in rows if not ok]
        if wrong:
            raise ValidationError(
                _("The invoice XML does not match the request: %(fields)s.")
                % {"fields": ", ".join(wrong)},
                code="xml_mismatch",
            )
        number = fields["invoice_number"]
    if not DIGITAL_NUMBER.match(number):
        raise ValidationError(
            _("A fully digital invoice number has 20 digits."), code="invoice_number"
        )
    issued_on = _issue_date(issued_on, fields)
    try:
        return _issue(invoice_request, actor, reason, number, issued_on, fields, contents)
    except IntegrityError:  # the same number recorded at the same moment on another request
        raise ValidationError(
            _("Invoice number %(number)s is already recorded on another request.")
            % {"number": number},
            code="number_taken",
        )


def _issue(invoice_request, actor, reason, number, issued_on, fields, contents):
    with transaction.atomic():
        if (
            InvoiceRequest.objects.filter(invoice_number=number)
            .exclude(pk=invoice_request.pk)
            .exists()
        ):
            raise ValidationError(
                _("Invoice number %(number)s is already recorded on another request.")
                % {"number": number},
                code="number_taken",
            )
        issued = apply_transition(
            invoice_request,
            "issue",
            actor=actor,
            reason=reason or "issued",
            issuer=actor,
            invoice_number=number,
            issued_on=issued_on,
            xml_fields=fields,
        )
        for kind, data in contents.items():
            checked = proof_files.Checked(kind, data)
            item = InvoiceFile(
                request=issued,
                kind=kind,
                size=checked.size,
                sha256=checked.sha256,
                uploaded_by=actor,
            )
            proof_files.save(item.file, checked, stem="invoice")
            item.save()
        tell(issued, "invoice_issued", number=number, issued_on=issued_on.isoformat())
    return issued


def reject_invoice(
    invoice_request, *, actor, reason="", decision_reason="", **_unused
) -> InvoiceRequest:
    """Refuse a submitted request; its amount is invoiceable again; the reason goes to
    the user."""
    _not_own_case(invoice_request, actor)
    decision_reason = (decision_reason or reason or "").strip()
    with transaction.atomic():
        rejected = apply_transition(
            invoice_request, "reject", actor=actor, reason=reason, decision_reason=decision_reason
        )
        tell(rejected, "invoice_rejected", reason=rejected.decision_reason)
    return rejected


def reverse_invoice(
    invoice_request, *, actor, reason="", red_letter_reason="", red_letter_number="", **_unused
) -> InvoiceRequest:
    """Red-letter reversal of an issued invoice, with one of the red-letter reasons; the
    amount becomes invoiceable again (R-INV-1, R-INV-2)."""
    if red_letter_reason not in RedLetterReason.values:
        raise ValidationError(_("Choose one of the red-letter reasons."), code="red_letter_reason")
    if not (reason or "").strip():
        raise ValidationError(_("A reversal needs a reason."), code="reason_required")
    with transaction.atomic():
        reversed_ = apply_transition(
            invoice_request,
            "reverse",
            actor=actor,
            reason=reason,
            red_letter_reason=red_letter_reason,
            red_letter_number=(red_letter_number or "").strip()[:40],
        )
        tell(
            reversed_,
            "invoice_reversed",
            number=reversed_.invoice_number,
            red_letter_reason=str(RedLetterReason(red_letter_reason).label),
        )
    return reversed_


def read_invoice_file(item: InvoiceFile, *, actor):
    """Decrypted bytes of an issued invoice file for its owner or for staff holding
    invoices.view_invoice_file (a staff view is audited). Returns (data, type, name)."""
    owner = actor is not None and item.request.account.user_id == actor.pk
    if not owner:
        if actor is None or not actor.has_perm(FILE_PERM):
            raise PermissionDenied(_("Invoice files need the invoice-file permission."))
        record_audit(item.request, action="view_file", actor=actor, file=item.pk)
    if item.request.state not in (InvoiceState.ISSUED, InvoiceState.REVERSED):
        raise PermissionDenied(_("This request has no issued invoice."))
    data = proof_files.read(item.file)
    return data, item.content_type, item.download_name


def notice_attachments(notice) -> list:
    """The issued invoice's files for the email of an `invoice_issued` notice, as
    (file name, bytes, content type), PDF first: what the notice's email should carry
    (R-INV-4). Registered with notices when it takes attachments (invoices/apps.py)."""
    request_id = (notice.context or {}).get("request")
    files = InvoiceFile.objects.filter(
        request_id=request_id,
        request__account__user_id=notice.user_id,
        request__state=InvoiceState.ISSUED,
    ).select_related("request")
    order = {FileKind.PDF: 0, FileKind.OFD: 1, FileKind.XML: 2}
    return [
        (item.download_name, proof_files.read(item.file), item.content_type)
        for item in sorted(files, key=lambda f: order.get(f.kind, 9))
    ]


transition_map(
    InvoiceRequest,
    {"issue": issue_invoice, "reject": reject_invoice, "reverse": reverse_invoice},
)
