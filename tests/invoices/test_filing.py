"""Invoice requests: what may be invoiced (R-INV-1), titles and kinds (R-INV-3), and the
bad input each refused with nothing changed."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.services import change_standing
from billing.models import Posting, TxnKind
from billing.services.ledger import reverse_transaction
from billing.services.purchases import purchase_package
from invoices.models import InvoiceProof, InvoiceRequest, InvoiceState
from invoices.selectors import invoiceable_for
from invoices.services.filing import submit_invoice
from invoices.services.issuing import reject_invoice
from tests.factories import StaffFactory, UserFactory, cny, grant

from .conftest import (
    COMPANY_ID,
    SAMPLE_BUYER,
    bank_topup,
    consume,
    funded,
    proof_file,
    trial_for,
)


def invoiceable(user):
    return invoiceable_for(user.balance_account).invoiceable.amount


def refused(code, fn, *args, **kwargs):
    before = InvoiceRequest.objects.count(), InvoiceProof.objects.count()
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    assert exc.value.code == code, exc.value
    assert (InvoiceRequest.objects.count(), InvoiceProof.objects.count()) == before
    return exc.value


@pytest.mark.django_db
def test_invoiceable_is_cash_consumed_minus_invoiced_r_inv_1(person, clerk):
    """R-INV-1: invoiceable = cash consumed − cash already invoiced; trial money spent
    first is never invoiceable, unconsumed cash is not either."""
    account = person.balance_account
    trial_for(account, "10.00")
    bank_topup(person, "100.00", clerk)
    consume(account, "25.00")  # 10 trial + 15 cash
    assert invoiceable(person) == Decimal("15.00")
    submit_invoice(person, amount="12.00")
    assert invoiceable(person) == Decimal("3.00")
    consume(account, "5.00")
    assert invoiceable(person) == Decimal("8.00")


@pytest.mark.django_db
def test_discount_money_is_never_invoiced_r_inv_1(person, clerk):
    """R-INV-1: discount money a promotion gave is spent before cash and not invoiceable."""
    from tests.refunds.conftest import discount_for

    topup = bank_topup(person, "50.00", clerk)
    discount_for(topup, "5.00")
    consume(person.balance_account, "8.00")  # 5 discount + 3 cash
    assert invoiceable(person) == Decimal("3.00")


@pytest.mark.django_db
def test_reversed_usage_is_no_longer_invoiceable_r_inv_1(person, clerk):
    """R-INV-1: consumption is counted net of reversals."""
    funded(person, clerk, "100.00", None)
    charge = consume(person.balance_account, "30.00")
    assert invoiceable(person) == Decimal("30.00")
    reverse_transaction(charge.transaction, reason="test: duplicate call")
    assert invoiceable(person) == Decimal("0.00")


@pytest.mark.django_db
def test_usage_in_arrears_is_invoiceable_once_paid_r_inv_1(person, clerk):
    """R-INV-1: usage beyond the balance runs up arrears; it becomes consumed cash (and
    invoiceable) when a top-up pays the arrears, not before."""
    funded(person, clerk, "10.00", "15.00")  # 10 cash + 5 arrears
    assert invoiceable(person) == Decimal("10.00")
    bank_topup(person, "20.00", clerk)  # settles the 5 first
    assert invoiceable(person) == Decimal("15.00")
    months = invoiceable_for(person.balance_account).months
    assert sum(m.consumed.amount for m in months) == Decimal("15")


@pytest.mark.django_db
def test_prepaid_purchase_cash_is_invoiceable_r_inv_1(person, clerk):
    """R-INV-1: the cash part of a prepaid purchase is consumed cash."""
    funded(person, clerk, "100.00", None)
    purchase_package(
        person.balance_account, cny("40.00"), idempotency_key="pkg-1", description="package"
    )
    assert invoiceable(person) == Decimal("40.00")


@pytest.mark.django_db
def test_sub_fen_consumption_is_invoiced_in_whole_fen_r_inv_1(person, clerk):
    """R-INV-1, R-LED-3: usage priced in fractions of a fen is invoiceable to the whole fen."""
    funded(person, clerk, "100.00", "1.234567")
    assert invoiceable(person) == Decimal("1.23")


@pytest.mark.django_db
def test_rejection_releases_the_reserved_amount_r_inv_1(person, clerk, finance):
    """R-INV-1: a request reserves its amount at submission; rejection releases it."""
    funded(person, clerk)
    request = submit_invoice(person, amount="60.00")
    assert invoiceable(person) == 0
    refused("above_invoiceable", submit_invoice, person, amount="1.00")
    reject_invoice(request, actor=finance, reason="title typo")
    assert invoiceable(person) == Decimal("60.00")
    assert submit_invoice(person, amount="60.00").state == InvoiceState.SUBMITTED


@pytest.mark.django_db
def test_the_request_covers_consumption_by_month_r_inv_1(person, clerk):
    """R-INV-1: the page's consumption by month, and the months a request covers."""
    funded(person, clerk, "100.00", "40.00")
    figures = invoiceable_for(person.balance_account)
    assert [m.consumed.amount for m in figures.months] == [Decimal("40")]
    request = submit_invoice(person, amount="30.00")
    assert request.covers_from == request.covers_to == figures.months[0].month
    months = invoiceable_for(person.balance_account).months
    assert months[0].invoiced.amount == Decimal("30") and months[0].open.amount == Decimal("10")


# --- titles and kinds (R-INV-3) ---------------------------------------------------------------


@pytest.mark.django_db
def test_personal_invoice_is_in_the_verified_name_r_inv_3(person, clerk):
    """R-INV-3: a personal invoice's title is the verified name, no taxpayer id; another
    name is refused."""
    funded(person, clerk)
    request = submit_invoice(person, amount="10.00", title_type="personal")
    assert (request.title, request.taxpayer_id, request.title_type) == ("Zhang San", "", "personal")
    refused("personal_title", submit_invoice, person, amount="10.00", title="Li Si")


@pytest.mark.django_db
def test_company_invoice_for_an_individual_needs_title_id_and_proof_r_inv_3(person, clerk):
    """R-INV-3: an individual's company invoice has the company title, a taxpayer id that
    passes GB 32100, and at least one proof file (stored encrypted)."""
    funded(person, clerk)
    request = submit_invoice(
        person,
        amount="20.00",
        title_type="company",
        title="  示例买方科技有限公司 ",
        taxpayer_id=COMPANY_ID.lower(),
        proofs=[proof_file()],
    )
    assert (request.title, request.taxpayer_id) == (SAMPLE_BUYER, COMPANY_ID)
    (proof,) = request.proofs.all()
    with open(proof.file.path, "rb") as fh:
        assert not fh.read().startswith(b"%PDF")  # encrypted at rest


@pytest.mark.django_db
def test_company_invoice_without_proof_is_refused_r_inv_3(person, clerk):
    """R-INV-3: a company invoice on a personal account without proof is refused."""
    funded(person, clerk)
    refused(
        "proof_required",
        submit_invoice,
        person,
        amount="20.00",
        title_type="company",
        title=SAMPLE_BUYER,
        taxpayer_id=COMPANY_ID,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "taxpayer_id",
    [
        COMPANY_ID[:-1] + ("0" if COMPANY_ID[-1] != "0" else "1"),
        "91110108MA01",
        "",
        "9111O108MA01TEXT0T",
    ],
)
def test_bad_taxpayer_id_is_refused_r_inv_3(person, clerk, taxpayer_id):
    """R-INV-3: the taxpayer id must pass the GB 32100 check (length, characters, check
    character)."""
    funded(person, clerk)
    refused(
        "bad_taxpayer_id",
        submit_invoice,
        person,
        amount="20.00",
        title_type="company",
        title=SAMPLE_BUYER,
        taxpayer_id=taxpayer_id,
        proofs=[proof_file()],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data"),
    [("badge.pdf", b"GIF89a not a pdf"), ("badge.png", b"%PDF-1.4 says png"), ("badge.pdf", b"")],
)
def test_proof_that_is_not_what_its_name_says_is_refused_r_inv_3(person, clerk, name, data):
    """R-INV-3: proof files are checked by content (and size), not by name."""
    funded(person, clerk)
    refused(
        "file_empty" if not data else "file_type",
        submit_invoice,
        person,
        amount="20.00",
        title_type="company",
        title=SAMPLE_BUYER,
        taxpayer_id=COMPANY_ID,
        proofs=[proof_file(name, data)],
    )


@pytest.mark.django_db
def test_oversized_proof_is_refused_r_inv_3(person, clerk, settings):
    """R-INV-3: a proof file over settings.UPLOAD_MAX_BYTES is refused."""
    settings.UPLOAD_MAX_BYTES = 100
    funded(person, clerk)
    refused(
        "file_too_large",
        submit_invoice,
        person,
        amount="20.00",
        title_type="company",
        title=SAMPLE_BUYER,
        taxpayer_id=COMPANY_ID,
        proofs=[proof_file(data=b"%PDF-" + b"x" * 200)],
    )


@pytest.mark.django_db
def test_enterprise_gets_invoices_only_in_its_verified_name_r_inv_3(company, clerk):
    """R-INV-3: an enterprise account's invoice carries its verified company's name and
    credit code; another title or code is refused."""
    funded(company, clerk)
    request = submit_invoice(company, amount="10.00", title_type="personal")
    assert (request.title_type, request.title, request.taxpayer_id) == (
        "company",
        SAMPLE_BUYER,
        COMPANY_ID,
    )
    refused("enterprise_title", submit_invoice, company, amount="10.00", title="Other Co. Ltd.")
    from accounts.identity import make_credit_code

    refused(
        "enterprise_title",
        submit_invoice,
        company,
        amount="10.00",
        title=SAMPLE_BUYER,
        taxpayer_id=make_credit_code("91110108MA01ABCD1"),
    )


@pytest.mark.django_db
def test_special_vat_invoice_only_for_verified_enterprises_r_inv_4(person, company, clerk):
    """R-INV-4: a special VAT invoice only for verified enterprises, with registered
    address, phone, bank and account."""
    funded(company, clerk)
    funded(person, clerk)
    special = {
        "registered_address": "北京市海淀区示例路 1 号",
        "registered_phone": "010-50000000",
        "bank_name": "示例银行北京分行",
        "bank_account": "6200000000000001",
    }
    refused(
        "special_needs_enterprise", submit_invoice, person, amount="5.00", kind="special", **special
    )
    refused(
        "special_fields",
        submit_invoice,
        company,
        amount="5.00",
        kind="special",
        **{**special, "bank_account": " "},
    )
    request = submit_invoice(company, amount="5.00", kind="special", **special)
    assert request.kind == "special" and request.bank_account == "6200000000000001"


@pytest.mark.django_db
def test_unverified_account_cannot_ask_for_invoices_r_inv_3(db):
    """R-INV-3: titles come from the verification, so an unverified account is refused."""
    refused("not_verified", submit_invoice, UserFactory(phone=""), amount="1.00")


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("60.01", "above_invoiceable"),
        ("0", "non_positive_amount"),
        ("0.00", "non_positive_amount"),
        ("-5", "non_positive_amount"),
        ("10.001", "too_many_decimals"),
        ("1e2", "invalid_amount"),
        ("abc", "invalid_amount"),
        (cny("10.00").__class__(Decimal("10"), "USD"), "wrong_currency"),
    ],
)
def test_bad_amounts_are_refused_r_inv_1(person, clerk, amount, code):
    """R-INV-1: above the invoiceable amount, zero, negative, 3 decimals, not a number,
    another currency: refused, nothing reserved."""
    funded(person, clerk)
    refused(code, submit_invoice, person, amount=amount)
    assert invoiceable(person) == Decimal("60.00")


@pytest.mark.django_db
def test_minimum_amount_is_configurable_r_inv_1(person, clerk, settings):
    """R-INV-1: settings.INVOICE_MIN_AMOUNT is the least one request may ask for."""
    settings.INVOICE_MIN_AMOUNT = Decimal("50.00")
    funded(person, clerk)
    refused("below_minimum", submit_invoice, person, amount="49.99")
    assert submit_invoice(person, amount="50.00").amount.amount == Decimal("50")


@pytest.mark.django_db
@pytest.mark.parametrize("standing", ["suspend", "lock", "freeze"])
def test_account_in_bad_standing_cannot_file_r_acc_8(person, clerk, standing):
    """R-INV-1, R-ACC-8: a suspended, locked (disputed) or frozen account files no invoice."""
    funded(person, clerk)
    staff = grant(
        StaffFactory(),
        "accounts.suspend_balanceaccount",
        "accounts.lock_balanceaccount",
        "accounts.freeze_balanceaccount",
    )
    extra = {"authority": "Court", "document_number": "X-1"} if standing == "freeze" else {}
    change_standing(person.balance_account, standing, actor=staff, reason="test", **extra)
    refused("standing", submit_invoice, person, amount="10.00")


@pytest.mark.django_db
def test_submission_moves_no_money(person, clerk):
    """R-INV-1: an invoice request records an invoice; the ledger does not move."""
    funded(person, clerk)
    before = Posting.objects.count()
    submit_invoice(person, amount="10.00")
    assert Posting.objects.count() == before
    assert not Posting.objects.filter(transaction__kind=TxnKind.HOLD).exists()


@pytest.mark.django_db
def test_pending_usage_is_settled_before_the_invoiceable_check_r_use_5(person, clerk):
    """R-USE-5 / R-INV-1: usage metered but not settled yet is settled when a request is
    submitted, so it counts as consumed cash: the request for all of it is accepted, and
    the event is settled with the cash lot that paid."""
    from accounts.services import create_api_key
    from billing.models import UsageEvent
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage

    bank_topup(person, "100.00", clerk)
    _key, raw = create_api_key(person, name="k")
    ref = resolve_api_keys([raw])[raw]
    (result,) = record_usage([ReportedUsage("inv-pending", ref, "m", 40_000_000)])
    assert result.status == "accepted"
    assert invoiceable(person) == 0  # the page's figure: settled usage only
    request = submit_invoice(person, amount="40.00")
    assert request.amount.amount == Decimal("40.00")
    event = UsageEvent.objects.get(request_id="inv-pending")
    assert event.transaction_id is not None and event.cash_micro == 40_000_000
    assert invoiceable(person) == 0
