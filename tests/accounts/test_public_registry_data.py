"""What is public is not masked (issue 15, R-ACC-5): an enterprise's credit code and
company name are registry data CS need whole; an individual's data stays masked."""

import pytest
from django.urls import reverse

from tests.factories import StaffFactory, UserFactory, grant

from .conftest import submit_enterprise, submit_individual

pytestmark = pytest.mark.django_db


def test_cs_see_an_enterprise_whole_and_an_individual_masked(client):
    company = submit_enterprise(UserFactory(phone=""))
    person = submit_individual(UserFactory(phone=""))
    client.force_login(grant(StaffFactory(), "accounts.view_verification"))
    page = client.get(reverse("admin:accounts_verification_changelist")).content.decode()
    assert company.credit_code in page and "Acme Models Ltd." in page
    assert person.id_number not in page and person.legal_name not in page
    assert "Zhao Lei" not in page  # the legal representative is a person: masked
