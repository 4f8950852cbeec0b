"""Issue 22, R-ACC-8: a new API key only for an account whose standing may create keys
(the one table, accounts.standing): a key the account could not use would mislead."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import ApiKey, Standing
from accounts.services import create_api_key
from accounts.standing import Action, may, refusal_code

from .factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "standing",
    [Standing.SUSPENDED, Standing.LOCKED, Standing.FROZEN, Standing.TERMINATED],
)
def test_no_new_key_unless_the_standing_may_create_one(standing):
    """Refused with the standing's stable code and a message naming it; nothing made."""
    user = UserFactory()
    type(user.balance_account).objects.filter(pk=user.balance_account.pk).update(standing=standing)
    assert not may(standing, Action.CREATE_KEY)
    with pytest.raises(ValidationError) as exc:
        create_api_key(user, name="k")
    assert exc.value.code == refusal_code(standing, Action.CREATE_KEY) == f"account_{standing}"
    assert str(Standing(standing).label).lower() in exc.value.messages[0]
    assert not ApiKey.objects.filter(account__user=user).exists()


def test_an_active_account_creates_keys():
    user = UserFactory()
    key, raw = create_api_key(user, name="laptop")
    assert key.account == user.balance_account and raw.startswith(key.prefix)


def test_the_keys_page_shows_the_refusal(client):
    """The user's keys page answers 400 with the refusal; no key, no secret shown."""
    user = UserFactory()
    type(user.balance_account).objects.filter(pk=user.balance_account.pk).update(
        standing=Standing.SUSPENDED
    )
    client.force_login(user)
    response = client.post(reverse("accounts:api_keys"), {"name": "k"})
    assert response.status_code == 400
    assert "no new API key can be created now" in response.content.decode()
    assert not ApiKey.objects.filter(account__user=user).exists()
