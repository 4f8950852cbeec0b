"""R-ADM-4 under concurrency on PostgreSQL: two second approvers at once credit once."""

import pytest
from django.core.exceptions import ValidationError

from billing.models import Lot
from tests.factories import StaffFactory, cny, grant
from tests.ledger.conftest import run_threads
from tests.topups.conftest import balance
from topups.models import TopUp
from topups.services.remittances import approve_credit, decline_credit, record_manual_topup

pytestmark = [pytest.mark.django_db(transaction=True)]

FINANCE = ("topups.confirm_remittance", "topups.resolve_review", "topups.view_topup")


def _outcome(fn):
    try:
        fn()
        return "won"
    except ValidationError as exc:
        return exc.code or "refused"


def _proposal(user):
    proposer = grant(StaffFactory(), *FINANCE)
    return record_manual_topup(
        user,
        "300.00",
        actor=proposer,
        payer_name="Zhang San",
        payer_account="6222",
        reference="POS-RACE",
        reason="counter",
    )


def test_two_approvers_at_once_credit_once(ready_user):
    """R-ADM-4: two second approvers approve one proposal at once: exactly one wins, the
    other is refused from the state it reads; one lot, the money counted once."""
    topup = _proposal(ready_user)
    approvers = [grant(StaffFactory(), *FINANCE) for _ in range(2)]

    def work(i):
        fresh = TopUp.objects.get(pk=topup.pk)
        return _outcome(lambda: approve_credit(fresh, actor=approvers[i], reason="ok"))

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(results) == ["won", "wrong_state"]
    assert Lot.objects.filter(account__user=ready_user).count() == 1
    assert balance(ready_user)["cash"] == cny("300.00")


def test_approve_racing_decline_exactly_one_wins(ready_user):
    """R-ADM-4: an approval and a decline at once: one wins; credited at most once."""
    topup = _proposal(ready_user)
    approvers = [grant(StaffFactory(), *FINANCE) for _ in range(2)]

    def work(i):
        fresh = TopUp.objects.get(pk=topup.pk)
        service = approve_credit if i == 0 else decline_credit
        return _outcome(lambda: service(fresh, actor=approvers[i], reason="decide"))

    results, errors = run_threads(2, work)
    assert not errors, errors
    assert sorted(results) == ["won", "wrong_state"]
    topup.refresh_from_db()
    credited = Lot.objects.filter(account__user=ready_user).count()
    assert (topup.state, credited) in (("paid", 1), ("review", 0))
