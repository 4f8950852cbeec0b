"""What is public is not masked (issue 15, R-ACC-5): an enterprise's credit code and
company name are registry data CS need whole; an individual's data stays masked."""

import pytest
from django.urls import reverse

from tests.factories import StaffFactory, UserFactory, grant

from .conftest import submit_enterprise, submit_individual

pytestmark = pytest.mark.django_db


def test_cs_see_an_enterprise_whole_and_an_individual_masked(client):
    """R-ACC-5: registry data whole, personal data masked, in the CS queue."""
    company = submit_enterprise(UserFactory(phone=""))
    person = submit_individual(UserFactory(phone=""))
    client.force_login(grant(StaffFactory(), "accounts.view_verification"))
    page = client.get(reverse("admin:accounts_verification_changelist")).content.decode()
    assert company.credit_code in page and "Acme Models Ltd." in page
    assert person.id_number not in page and person.legal_name not in page
    assert "Zhao Lei" not in page  # the legal representative is a person: masked


def test_the_check_character_column_reads_the_right_way_round(client):
    """R-ACC-2: a credit code that fails GB 32100 says so in words; a good one says passes."""
    good = submit_enterprise(UserFactory(phone=""))
    code = good.credit_code
    bad = submit_enterprise(
        UserFactory(phone=""), code=code[:17] + ("1" if code[17] != "1" else "2")
    )
    assert bad.check_digit_warning and not good.check_digit_warning
    client.force_login(grant(StaffFactory(), "accounts.view_verification"))
    page = client.get(reverse("admin:accounts_verification_changelist")).content.decode()
    assert page.count("⚠ fails GB 32100") == 1 and "passes" in page
