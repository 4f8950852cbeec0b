"""Invoices and refunds together (R-REF-2, R-INV-1), through refunds' own preview."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.services.ledger import reverse_transaction
from invoices.selectors import invoiced_unconsumed_micro
from invoices.services.filing import submit_invoice
from invoices.services.issuing import issue_invoice, reverse_invoice
from refunds.selectors import refund_preview
from refunds.services.filing import submit_refund

from .conftest import bank_topup, consume, funded, pdf, proof_file

pytestmark = pytest.mark.django_db


def refundable(user):
    return refund_preview(user.balance_account).total.amount


def test_invoicing_consumed_money_does_not_change_the_refundable_amount_r_ref_2(
    person, clerk, finance
):
    """R-REF-2: invoicing consumed cash leaves the refundable (unconsumed) cash as it was,
    requested or issued."""
    funded(person, clerk, "100.00", "40.00")
    assert refundable(person) == Decimal("60.00")
    request = submit_invoice(person, amount="40.00")
    assert refundable(person) == Decimal("60.00")
    issue_invoice(request, actor=finance, pdf=pdf(), invoice_number="26110000000000000100")
    preview = refund_preview(person.balance_account)
    assert preview.total.amount == Decimal("60.00")
    assert preview.lots[0].invoiced_unconsumed_micro == 0


def test_invoiced_money_no_longer_consumed_is_not_refundable_r_ref_2(person, clerk, finance):
    """R-REF-2: after a charge that was invoiced is reversed, the invoiced part that is no
    longer consumed is not refundable; a red-letter reversal makes it refundable again."""
    bank_topup(person, "100.00", clerk)
    charge = consume(person.balance_account, "40.00")
    request = submit_invoice(person, amount="40.00")
    issue_invoice(request, actor=finance, pdf=pdf(), invoice_number="26110000000000000101")
    reverse_transaction(charge.transaction, reason="test: the call failed upstream")
    assert invoiced_unconsumed_micro(person.balance_account.pk) == 40_000_000
    preview = refund_preview(person.balance_account)
    assert preview.lots[0].unconsumed.amount == Decimal("100")
    assert preview.lots[0].invoiced_unconsumed.amount == Decimal("40")
    assert preview.total.amount == Decimal("60.00")
    with pytest.raises(ValidationError) as exc:
        submit_refund(person, proofs=[proof_file()], amount="60.01")
    assert exc.value.code == "above_refundable"
    reverse_invoice(
        request, actor=finance, reason="usage reversed", red_letter_reason="sales_allowance"
    )
    assert refundable(person) == Decimal("100.00")


def test_invoiced_unconsumed_is_taken_from_the_oldest_lots_first_r_ref_2(person, clerk, finance):
    """R-REF-2: the invoiced-unconsumed part spreads over lots oldest first, never more
    than a lot's unconsumed cash."""
    bank_topup(person, "10.00", clerk)
    bank_topup(person, "50.00", clerk)
    charge = consume(person.balance_account, "25.00")  # lot 1: 10, lot 2: 15
    submit_invoice(person, amount="25.00")
    reverse_transaction(charge.transaction, reason="test")
    lots = refund_preview(person.balance_account).lots
    assert [lot.invoiced_unconsumed.amount for lot in lots] == [Decimal("10"), Decimal("15")]
    assert [lot.refundable.amount for lot in lots] == [Decimal("0"), Decimal("35")]


def test_a_refund_hold_is_not_consumption_r_inv_1(person, clerk):
    """R-INV-1: cash set aside for a refund is not consumed, so it is not invoiceable."""
    from invoices.selectors import invoiceable_for

    funded(person, clerk, "100.00", "30.00")
    submit_refund(person, proofs=[proof_file()])
    assert invoiceable_for(person.balance_account).invoiceable.amount == Decimal("30.00")


def test_preview_still_two_queries_with_invoices_r_ref_2(
    person, clerk, django_assert_max_num_queries
):
    """R-REF-2: the invoiced figure rides in the preview's lots query (still two)."""
    for _ in range(3):
        bank_topup(person, "10.00", clerk)
    consume(person.balance_account, "15.00")
    submit_invoice(person, amount="15.00")
    with django_assert_max_num_queries(2):
        preview = refund_preview(person.balance_account)
    assert len(preview.lots) == 3
