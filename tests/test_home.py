"""The user's home page (issue 15): the balance by kind, what needs attention with a link
to act on it, and the next steps; the same number of queries however much is pending."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage
from tests.disputes.conftest import _private_media as _private_media
from tests.disputes.conftest import clerk as clerk
from tests.disputes.conftest import cs as cs  # the fixtures
from tests.disputes.conftest import open_for, third_party_bank_topup
from tests.factories import cny
from tests.refunds.conftest import ready_user as ready_user
from topups.services.orders import start_topup

pytestmark = pytest.mark.django_db


def _home(client, user):
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_new_user_is_told_to_verify_top_up_and_make_a_key(client, user):
    """A fresh account: nothing to spend, three next steps, verification first."""
    page = _home(client, user)
    assert 'id="home-available"' in page and "¥0.00" in page
    steps = page.split('id="next-steps"')[1]
    assert steps.index(reverse("accounts:verification")) < steps.index(reverse("topups:start"))
    assert reverse("accounts:api_keys") in steps
    assert "Verify your real name: top-ups need it." in page


def test_what_needs_attention_links_to_where_to_act(client, ready_user, clerk, cs):
    """Unpaid order, arrears, expiring trial funds and an open dispute all show, linked."""
    account = ready_user.balance_account
    order = start_topup(ready_user, cny("30"), channel="bank")
    charge_usage(account, cny("5"), request_id="home-overdraft", model="m")  # all arrears
    grant_funds(
        account,
        cny("2"),
        kind="trial",
        expires_at=timezone.now() + timedelta(days=3),
        idempotency_key="home-trial",
    )
    page = _home(client, ready_user)
    assert reverse("topups:detail", args=[order.pk]) in page
    assert "You owe ¥5.00 for calls your balance did not cover" in page
    assert "expires on" in page
    disputed = third_party_bank_topup(ready_user, cny("20"), clerk)
    dispute = open_for([disputed], cs, cny("20"))
    page = _home(client, ready_user)
    assert reverse("disputes:detail", args=[dispute.pk]) in page
    assert "upload evidence" in page


def test_the_home_page_costs_the_same_queries_with_much_pending(
    client, ready_user, clerk, django_assert_max_num_queries
):
    """No N+1: one query per kind of thing, whatever the user has."""
    ready_user.language = "en"
    ready_user.save(update_fields=["language"])
    client.force_login(ready_user)
    # 15: issue 23 added the spend-limit card (one query for the account's limits)
    with django_assert_max_num_queries(15) as few:
        client.get(reverse("home"))
    account = ready_user.balance_account
    for n in range(4):
        start_topup(ready_user, cny("10"), channel="bank")
        grant_funds(
            account,
            cny("1"),
            kind="trial",
            expires_at=timezone.now() + timedelta(days=2),
            idempotency_key=f"home-q-{n}",
        )
        credit_lot(account, cny("1"), channel="alipay", idempotency_key=f"home-lot-{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("home"))
