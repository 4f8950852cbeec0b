"""Filing an invoice request (R-INV-1, R-INV-3) and its title proof files.

The amount is reserved at submission: the request is written under the balance
account's row lock (the ledger's lock order through billing.services.settlement.lock_and_settle),
and the invoiceable amount is computed inside that lock, so two requests of one
account are serialised and never invoice the same consumed cash.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts import proof_files
from accounts.identity import parse_credit_code
from accounts.models import VerificationKind
from accounts.selectors import approved_verification
from accounts.services import refuse_unverified_email
from billing.micro import from_micro, to_micro
from billing.services.settlement import lock_and_settle
from core.money import parse_amount
from core.workflow import record_audit

from ..models import InvoiceKind, InvoiceProof, InvoiceRequest, TitleType
from ..selectors import covered_months, invoiceable_for
from ._common import refuse_standing

PROOF_PERM = "invoices.view_invoice_proof"
MAX_PROOFS = 5
SPECIAL_FIELDS = ("registered_address", "registered_phone", "bank_name", "bank_account")


def min_amount() -> Decimal:
    return Decimal(str(getattr(settings, "INVOICE_MIN_AMOUNT", "1.00")))


def _clean(value) -> str:
    return " ".join(str(value or "").split())


def title_options(user) -> dict:
    """What the user may ask for, from their approved verification (R-INV-3):
    {"verification", "enterprise", "name", "credit_code", "kinds", "title_types"}."""
    verification = approved_verification(user)
    if verification is None:
        return {"verification": None, "kinds": [], "title_types": []}
    if verification.kind == VerificationKind.ENTERPRISE:
        return {
            "verification": verification,
            "enterprise": True,
            "name": verification.company_name,
            "credit_code": verification.credit_code,
            "kinds": [InvoiceKind.ORDINARY, InvoiceKind.SPECIAL],
            "title_types": [TitleType.COMPANY],
        }
    return {
        "verification": verification,
        "enterprise": False,
        "name": verification.legal_name,
        "credit_code": "",
        "kinds": [InvoiceKind.ORDINARY],
        "title_types": [TitleType.PERSONAL, TitleType.COMPANY],
    }


def _check_proofs(proofs):
    proofs = [p for p in (proofs or []) if p]
    if len(proofs) > MAX_PROOFS:
        raise ValidationError(
            _("At most %(n)s proof files.") % {"n": MAX_PROOFS}, code="too_many_files"
        )
    return [proof_files.check_document(p) for p in proofs]


def _title(user, *, kind, title_type, title, taxpayer_id, proofs, special):
    """(title type, title, taxpayer id, checked proofs) per R-INV-3, or ValidationError."""
    options = title_options(user)
    if options["verification"] is None:
        raise ValidationError(
            _("Invoices are issued to verified accounts only: verify your real name first."),
            code="not_verified",
        )
    if kind not in InvoiceKind.values:
        raise ValidationError(_("Choose the kind of invoice."), code="kind")
    if kind not in options["kinds"]:
        raise ValidationError(
            _("A special VAT invoice is only issued to verified enterprises."),
            code="special_needs_enterprise",
        )
    title, taxpayer_id = _clean(title), _clean(taxpayer_id).upper()
    if options["enterprise"]:
        name, code = options["name"], options["credit_code"]
        if (title and title != _clean(name)) or (taxpayer_id and taxpayer_id != code.upper()):
            raise ValidationError(
                _(
                    "Invoices of an enterprise account are issued only in the name and credit "
                    "code of its verified company."
                ),
                code="enterprise_title",
            )
        if proofs:
            raise ValidationError(
                _("An enterprise account needs no proof files."), code="no_proof_needed"
            )
        if kind == InvoiceKind.SPECIAL:
            missing = [k for k in SPECIAL_FIELDS if not _clean(special.get(k))]
            if missing:
                raise ValidationError(
                    _(
                        "A special VAT invoice needs the registered address, phone, bank and "
                        "bank account."
                    ),
                    code="special_fields",
                )
        return TitleType.COMPANY, _clean(name), code.upper(), []
    if any(_clean(special.get(k)) for k in SPECIAL_FIELDS):
        raise ValidationError(
            _("A special VAT invoice is only issued to verified enterprises."),
            code="special_needs_enterprise",
        )
    if title_type == TitleType.PERSONAL:
        name = _clean(options["name"])
        if (title and title != name) or taxpayer_id:
            raise ValidationError(
                _("A personal invoice is issued in your verified name only."),
                code="personal_title",
            )
        if proofs:
            raise ValidationError(
                _("A personal invoice needs no proof files."), code="no_proof_needed"
            )
        return TitleType.PERSONAL, name, "", []
    if title_type != TitleType.COMPANY:
        raise ValidationError(_("Choose a personal or a company title."), code="title_type")
    if not title:
        raise ValidationError(_("Give the company's name for the title."), code="title_required")
    try:
        parsed = parse_credit_code(taxpayer_id)
    except ValidationError:
        parsed = None
    if parsed is None or not parsed.check_digit_ok:
        raise ValidationError(
            _("The taxpayer id is not a valid unified social credit code (GB 32100)."),
            code="bad_taxpayer_id",
        )
    checked = _check_proofs(proofs)
    if not checked:
        raise ValidationError(
            _(
                "A company invoice for a personal account needs proof that you work for the "
                "company: an employment certificate, business licence or work badge."
            ),
            code="proof_required",
        )
    return TitleType.COMPANY, title[:200], parsed.code, checked


def submit_invoice(
    user,
    *,
    amount,
    kind=InvoiceKind.ORDINARY,
    title_type=TitleType.PERSONAL,
    title="",
    taxpayer_id="",
    proofs=None,
    email="",
    **special,
) -> InvoiceRequest:
    """File an invoice request and reserve its amount (R-INV-1, R-INV-3).

    Refused, changing nothing: an unverified account or one whose standing forbids it,
    an amount that is not a positive CNY figure in whole fen, below
    settings.INVOICE_MIN_AMOUNT or above the invoiceable amount, a title the account may
    not use, a bad taxpayer id, a company title of an individual without proof.
    """
    unknown = set(special) - set(SPECIAL_FIELDS)
    if unknown:
        raise TypeError(f"unexpected fields {sorted(unknown)}")
    refuse_unverified_email(user)  # issue 13: an unverified address may not act
    amount_micro = to_micro(parse_amount(amount))
    if amount_micro < to_micro(min_amount()):
        raise ValidationError(
            _("An invoice is for at least %(amount)s CNY.") % {"amount": f"{min_amount():.2f}"},
            code="below_minimum",
        )
    title_type, title, taxpayer_id, checked = _title(
        user,
        kind=kind,
        title_type=title_type,
        title=title,
        taxpayer_id=taxpayer_id,
        proofs=proofs,
        special=special,
    )
    account = user.balance_account
    with transaction.atomic():
        # the lock order: the balance account row (its standing read under it), then its
        # buckets, which settles the account's pending usage first (R-USE-5) so the
        # consumed cash below is exact; a second request of this account waits here
        standing = lock_and_settle([account.pk])[account.pk].standing
        refuse_standing(standing)
        figures = invoiceable_for(account)
        if amount_micro > figures.invoiceable_micro:
            raise ValidationError(
                _("At most %(amount)s CNY can be invoiced now.")
                % {"amount": f"{figures.invoiceable.amount:.2f}"},
                code="above_invoiceable",
            )
        start, end = covered_months(account.pk, amount_micro, figures.invoiced_micro)
        invoice_request = InvoiceRequest.objects.create(
            account=account,
            kind=kind,
            title_type=title_type,
            title=title,
            taxpayer_id=taxpayer_id,
            email=_clean(email) or user.email,
            amount_micro=amount_micro,
            covers_from=start,
            covers_to=end,
            filed_by=user,
            **(
                {k: _clean(v)[:200] for k, v in special.items()}
                if kind == InvoiceKind.SPECIAL
                else {}
            ),
        )
        for item in checked:
            proof = InvoiceProof(
                request=invoice_request, uploaded_by=user, content_type=item.content_type
            )
            proof_files.save(proof.file, item, stem="proof")
            proof.save()
        record_audit(
            invoice_request,
            action="submit",
            actor=user,
            to_state=invoice_request.state,
            amount=str(from_micro(amount_micro).amount),
            invoiceable_before=str(figures.invoiceable.amount),
        )
    return invoice_request


def read_proof(proof, *, actor):
    """Decrypted bytes of a title proof, for staff holding invoices.view_invoice_proof;
    each view is audited on the request. Returns (data, content_type, download name)."""
    if actor is None or not actor.has_perm(PROOF_PERM):
        raise PermissionDenied(_("Proof files need the invoice-proof permission."))
    data = proof_files.read(proof.file)
    record_audit(proof.request, action="view_proof", actor=actor, proof=proof.pk)
    ext = proof_files.extension(proof.content_type)
    return data, proof.content_type, f"invoice-{proof.request_id}-proof-{proof.pk}.{ext}"


def can_file(account) -> bool:
    """Whether the account's standing lets it file now (for pages; submit decides)."""
    try:
        refuse_standing(account.standing)
    except ValidationError:
        return False
    return True
