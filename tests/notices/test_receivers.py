import pytest

from accounts.models import BalanceAccount
from notices.models import Notice
from notices.receivers import on_standing_changed
from tests.factories import StaffFactory, UserFactory, grant

pytestmark = pytest.mark.django_db


def test_standing_change_notice_once_per_change():
    """R-NOT-1: a change of account standing creates one notice for that change."""
    user = UserFactory(language="zh-hans")
    account = user.balance_account
    account._changed()
    BalanceAccount.objects.filter(pk=account.pk).update(
        standing="suspended", standing_changed_at=account.standing_changed_at
    )
    account.refresh_from_db()
    on_standing_changed(BalanceAccount, account=account, transition="suspend")
    on_standing_changed(BalanceAccount, account=account, transition="suspend")
    notice = Notice.objects.get(user=user)
    assert notice.kind == "standing_changed"
    assert "已暂停" in notice.subject
    assert notice.context["standing"] == "suspended"


def test_change_standing_sends_the_notice():
    """R-NOT-1 through accounts.services.change_standing and its standing_changed signal
    (the signal comes with the accounts branch; this passes once both are merged)."""
    from accounts.services import change_standing

    user = UserFactory()
    staff = grant(StaffFactory(), "accounts.suspend_balanceaccount")
    change_standing(user.balance_account, "suspend", actor=staff, reason="spam")
    notice = Notice.objects.get(user=user, kind="standing_changed")
    assert "Suspended" in notice.subject
    assert "spam" not in notice.body  # staff reasons stay internal
