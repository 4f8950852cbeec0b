"""The demo data of the accounts area loads, twice, and shows each workflow."""

import pytest

from accounts import demo, selectors, services
from accounts.models import AgreementState, ApiKey, Verification, VerificationState

pytestmark = pytest.mark.django_db


def test_demo_seed_is_idempotent_and_complete():
    """R-ACC-2/6/7 demo: verified user with key and acceptance; a queue for CS. The
    demo user's verification is approved by the top-ups demo, which grants the trial."""
    from topups import demo as topups_demo

    for _ in range(2):
        context = {"logins": [], "notes": []}
        demo.seed(context)
        topups_demo.seed(context)
    user = context["users"]["user"]
    v = selectors.approved_verification(user)
    assert v is not None and v.kind == "individual"
    assert services.has_full_capacity(user) is True
    assert ApiKey.objects.filter(account__user=user).count() == 1
    assert selectors.current_acceptance(user) is not None
    assert selectors.agreement_in_force().state == AgreementState.PUBLISHED
    queue = Verification.objects.filter(state=VerificationState.SUBMITTED)
    assert set(queue.values_list("user__email", flat=True)) == {
        "applicant@demo.local",
        "company@demo.local",
    }
    assert queue.filter(check_digit_warning=True).count() == 1
