"""R-ACC-4 under concurrency: real PostgreSQL, real threads."""

import threading
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.identity import make_resident_id
from accounts.models import Verification, VerificationState
from tests.factories import UserFactory

from .conftest import submit_individual

pytestmark = [pytest.mark.django_db(transaction=True)]


def _race(fns):
    barrier = threading.Barrier(len(fns))
    outcomes = [None] * len(fns)

    def run(i, fn):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the outcome is what we assert on
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_two_cs_agents_approving_one_identity_at_once(cs_agent):
    """R-ACC-4 / R-TOP-5: three submissions of one ID number approved at the same moment
    through the staff path: one wins, and one trial grant is made."""
    from billing.models import Grant
    from core.workflow import perform_transition

    number = make_resident_id(date(1993, 3, 3), sequence=303)
    subs = [submit_individual(UserFactory(), id_number=number) for _ in range(3)]
    outcomes = _race(
        [lambda v=v: perform_transition(v, "approve", actor=cs_agent, reason="ok") for v in subs]
    )
    approved = Verification.objects.filter(state=VerificationState.APPROVED)
    assert approved.count() == 1
    assert Grant.objects.filter(kind="trial").count() == 1
    refusals = [o for o in outcomes if isinstance(o, ValidationError)]
    assert len(refusals) == 2
    assert all(r.error_list[0].code == "identity_taken" for r in refusals)


def test_one_user_submitting_twice_at_once():
    """R-ACC-2: concurrent double submissions of one user leave one open verification."""
    user = UserFactory()
    outcomes = _race([lambda: submit_individual(user) for _ in range(3)])
    assert Verification.objects.filter(user=user).count() == 1
    assert sum(isinstance(o, ValidationError) for o in outcomes) == 2
