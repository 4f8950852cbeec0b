"""The user is told when their account's standing changes (R-NOT-1, R-ACC-8)."""

import pytest

from accounts.services import change_standing
from notices.models import Notice
from tests.factories import StaffFactory, UserFactory, grant

pytestmark = pytest.mark.django_db


def test_standing_change_notice_in_the_users_language():
    """R-NOT-1: a change of account standing creates one notice, in the user's language."""
    user = UserFactory(language="zh-hans")
    staff = grant(StaffFactory(), "accounts.suspend_balanceaccount")
    change_standing(user.balance_account, "suspend", actor=staff, reason="spam")
    notice = Notice.objects.get(user=user)
    assert notice.kind == "standing_changed"
    assert "已暂停" in notice.subject
    assert notice.context["standing"] == "suspended"


def test_each_change_gets_its_own_notice_and_the_reason_stays_internal():
    """R-NOT-1: one notice per change of standing; staff reasons stay internal."""
    user = UserFactory()
    staff = grant(StaffFactory(), "accounts.suspend_balanceaccount")
    change_standing(user.balance_account, "suspend", actor=staff, reason="spam")
    change_standing(user.balance_account, "reinstate", actor=staff, reason="cleared")
    notices = list(Notice.objects.filter(user=user, kind="standing_changed").order_by("id"))
    assert len(notices) == 2
    assert "Suspended" in notices[0].subject
    assert "spam" not in notices[0].body and "cleared" not in notices[1].body
