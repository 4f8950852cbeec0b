"""The statement and the user's pages in the reader's language (issue 22, R-ADM-6):
memos and bucket names as words, ¥ on amounts, unambiguous times, transitions as words,
and the key page telling a blocked account before the user tries (R-ACC-8)."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Standing
from accounts.services import create_api_key
from billing.memos import bucket_name, memo_text
from billing.services.ledger import credit_lot
from billing.services.settlement import charge_usage
from tests.factories import UserFactory, cny


@pytest.mark.parametrize(
    ("memo", "en", "zh"),
    [
        ("usage: 3 events", "Usage: 3 calls", "用量：3 次调用"),
        ("usage: 1 event", "Usage: 1 call", "用量：1 次调用"),
        ("Top-up T2026120800001", "Top-up T2026120800001", "充值 T2026120800001"),
        ("Top-up via alipay", "Top-up via Alipay", "通过支付宝充值"),
        ("Refund hold", "Refund hold", "退款冻结"),
        ("Refund paid via bank", "Refund paid via Bank transfer", "退款已通过银行转账支付"),
        ("trial grant", "Trial funds granted", "发放试用金"),
        ("A reason staff typed", "A reason staff typed", "A reason staff typed"),
    ],
)
def test_memos_are_words_in_the_readers_language(memo, en, zh):
    """R-ADM-6: a stored memo is rendered at display time in the active language."""
    with translation.override("en"):
        assert memo_text(memo) == en
    with translation.override("zh-hans"):
        assert memo_text(memo) == zh


def test_bucket_names_are_words():
    """R-ADM-6: "hold" is never shown raw."""
    with translation.override("zh-hans"):
        assert bucket_name("hold") == "退款冻结"
    with translation.override("en"):
        assert bucket_name("hold") == "Refund hold"


@pytest.mark.django_db
def test_statement_in_chinese_has_words_yuan_and_beijing_time():
    """R-ADM-6: the Chinese statement shows memos as Chinese words, amounts with ¥ and
    times marked as Beijing time, in cards that keep numbers whole."""
    user = UserFactory(phone="", language="zh-hans")
    credit_lot(user.balance_account, cny("5"), channel="alipay", idempotency_key="w-lot")
    charge_usage(user.balance_account, cny("0.5"), request_id="w-1", model="glm-4")
    client = Client()
    client.force_login(user)
    page = client.get(reverse("billing:balance")).content.decode()
    assert "通过支付宝充值" in page
    assert "Top-up via" not in page
    assert "北京时间" in page
    assert 'class="statement-cards"' in page and "<time datetime=" in page
    assert "¥5.00" in page


@pytest.mark.django_db
def test_topup_history_amounts_carry_yuan(client):
    """Issue 22: the top-up history shows ¥ on every amount."""
    user = UserFactory(phone="")
    client.force_login(user)
    page = client.get(reverse("topups:history")).content.decode()
    assert "Amount (CNY)" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("standing", [Standing.LOCKED, Standing.FROZEN])
def test_key_page_says_keys_cannot_be_used(client, standing):
    """R-ACC-8: a locked or frozen account's key page says its keys are refused and
    offers no form to create one."""
    user = UserFactory(phone="")
    create_api_key(user, name="laptop")
    type(user.balance_account).objects.filter(pk=user.balance_account.pk).update(standing=standing)
    client.force_login(user)
    page = client.get(reverse("accounts:api_keys")).content.decode()
    assert 'id="keys-blocked"' in page and "cannot be used now" in page
    assert 'id="create-key-refused"' in page
    assert 'name="name"' not in page


@pytest.mark.django_db
def test_new_key_has_a_copy_button(client):
    """Issue 22: the secret shown once comes with a copy button (plain script, no CDN)."""
    user = UserFactory(phone="")
    client.force_login(user)
    page = client.post(reverse("accounts:api_keys"), {"name": "k"}).content.decode()
    assert 'id="copy-secret"' in page and "/static/copy.js" in page and "cdn" not in page.lower()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   ", "\u200b\u200b", "\u200d", "\ufeff"])
def test_key_names_cannot_be_empty_or_invisible(client, name):
    """R-ACC-6: a key name people cannot see is refused; no key is made."""
    user = UserFactory(phone="")
    client.force_login(user)
    response = client.post(reverse("accounts:api_keys"), {"name": name})
    assert response.status_code in (200, 400)
    assert not user.balance_account.api_keys.exists()
    assert 'id="fresh-secret"' not in response.content.decode()
