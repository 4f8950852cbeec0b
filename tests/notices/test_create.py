import datetime

import pytest
from djmoney.money import Money

from notices.kinds import KINDS
from notices.models import Notice
from notices.services import notify, render_notice, send_notice

pytestmark = pytest.mark.django_db


def test_send_notice_renders_the_kind_in_english(user, clock):
    """R-NOT-1: a notice of a kind is rendered from its templates (subject, body)."""
    notice = send_notice(
        user,
        "trial_expiring",
        {"grant_kind": "trial", "amount": Money("50.00", "CNY"), "expires_at": clock},
        dedupe_key="trial_expiring:1",
    )
    assert notice.kind == "trial_expiring"
    assert notice.subject.startswith("Your trial funds expire on")
    assert "expires on" in notice.body
    assert notice.context["amount"] == "50.00"
    assert notice.status == "pending"


def test_send_notice_uses_the_users_language(zh_user, clock):
    """R-NOT-1: notices are written in the user's language (zh-hans)."""
    notice = send_notice(
        zh_user,
        "trial_expired",
        {"grant_kind": "trial", "amount": Money("50", "CNY"), "expires_at": clock},
    )
    assert "试用金" in notice.subject
    assert "到期" in notice.body


def test_every_kind_has_templates_in_both_languages(clock):
    """R-NOT-1: adding a kind is a template + a call; every registered kind renders in both."""
    context = {
        "amount": Money("1.00", "CNY"),
        "expires_at": clock,
        "effective_at": clock,
        "version": "2026.2",
        "standing": "suspended",
        "standing_label": "Suspended",
        "threshold": Money("10", "CNY"),
        "available": Money("5", "CNY"),
    }
    for key in KINDS:
        for language in ("en", "zh-hans"):
            subject, body = render_notice(key, context, language=language)
            assert subject and body.strip(), (key, language)
            assert "\n" not in subject


def test_notice_exactly_once_per_event(user, clock):
    """R-NOT-1: the same event (dedupe key) never creates a second notice."""
    first = send_notice(user, "low_balance", {"available": "1", "threshold": "5"}, "low:1")
    again = send_notice(user, "low_balance", {"available": "1", "threshold": "5"}, "low:1")
    plain = notify(user, "low_balance", subject="x", body="y", dedupe_key="low:1")
    assert first.pk == again.pk == plain.pk
    assert Notice.objects.filter(user=user).count() == 1


def test_unknown_kind_is_refused_and_creates_nothing(user):
    """Bad input: an unregistered kind is a clear error, nothing is stored."""
    with pytest.raises(ValueError, match="Unknown notice kind"):
        send_notice(user, "no_such_kind", {})
    assert not Notice.objects.exists()


def test_notify_keeps_callers_subject_and_body(user):
    """notify() (used by other apps with their own text) still stores text as given."""
    notice = notify(
        user,
        "topup_credited",
        subject="Top-up credited",
        body="¥10.00 arrived",
        context={"amount": Money("10", "CNY"), "at": datetime.date(2026, 1, 2)},
    )
    assert (notice.subject, notice.body) == ("Top-up credited", "¥10.00 arrived")
    assert notice.context == {"amount": "10.00", "at": "2026-01-02"}
