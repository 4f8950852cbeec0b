"""Invoice requests under concurrency on PostgreSQL with real threads (R-INV-1, R-LED-6)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from invoices.models import InvoiceRequest
from invoices.selectors import invoiceable_for
from invoices.services.filing import submit_invoice
from invoices.services.issuing import issue_invoice
from tests.ledger.conftest import run_threads

from .conftest import funded, pdf

pytestmark = [pytest.mark.django_db(transaction=True)]


def _outcome(fn):
    try:
        fn()
        return "won"
    except ValidationError as exc:
        return exc.code or "refused"


def test_two_requests_at_once_never_invoice_the_same_money_r_inv_1(person, clerk):
    """R-INV-1: four requests for the whole invoiceable amount at once, each on its own
    connection: the account's row lock serialises them, exactly one is filed, the others
    are refused with what is left (nothing)."""
    funded(person, clerk, "100.00", "60.00")

    def work(i):
        return _outcome(lambda: submit_invoice(person, amount="60.00"))

    results, errors = run_threads(4, work)
    assert not errors, errors
    assert sorted(results) == ["above_invoiceable"] * 3 + ["won"]
    assert InvoiceRequest.objects.count() == 1
    assert invoiceable_for(person.balance_account).invoiceable_micro == 0


def test_partial_requests_at_once_never_exceed_consumption_r_inv_1(person, clerk):
    """R-INV-1: six requests of 15.00 at once against 60.00 consumed: four are filed,
    two refused, and what is reserved never exceeds what was consumed."""
    funded(person, clerk, "100.00", "60.00")

    def work(i):
        return _outcome(lambda: submit_invoice(person, amount="15.00"))

    results, errors = run_threads(6, work)
    assert not errors, errors
    assert sorted(results) == ["above_invoiceable"] * 2 + ["won"] * 4
    figures = invoiceable_for(person.balance_account)
    assert figures.invoiced.amount == Decimal("60") and figures.invoiceable_micro == 0


def test_two_finance_staff_issue_one_request_at_once_r_inv_2(person, clerk, finance):
    """R-INV-2: two issue the same request at once: one wins, the other is refused from
    the state it reads after the winner's commit; one set of files."""
    from tests.factories import StaffFactory, grant

    from .conftest import FINANCE_PERMS

    funded(person, clerk)
    request = submit_invoice(person, amount="10.00")
    staff = [finance, grant(StaffFactory(), *FINANCE_PERMS)]

    def work(i):
        fresh = InvoiceRequest.objects.get(pk=request.pk)
        number = f"2611000000000000020{i}"
        return _outcome(
            lambda: issue_invoice(fresh, actor=staff[i], pdf=pdf(), invoice_number=number)
        )

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(results) == ["won", "wrong_state"]
    request.refresh_from_db()
    assert request.state == "issued" and request.files.count() == 1
