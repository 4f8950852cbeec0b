import datetime

import pytest
from djmoney.money import Money

from notices.kinds import KINDS, UnknownNoticeKind
from notices.models import Notice
from notices.services import render_notice, send_notice

pytestmark = pytest.mark.django_db


def test_send_notice_renders_the_kind_in_english(user, clock):
    """R-NOT-1: a notice of a kind is rendered from its templates (subject, body)."""
    notice = send_notice(
        user=user,
        kind="trial_expiring",
        context={"grant_kind": "trial", "amount": Money("50.00", "CNY"), "expires_at": clock},
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
        user=zh_user,
        kind="trial_expired",
        context={"grant_kind": "trial", "amount": Money("50", "CNY"), "expires_at": clock},
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
    context = {"available": "1", "threshold": "5"}
    first = send_notice(user=user, kind="low_balance", context=context, dedupe_key="low:1")
    again = send_notice(user=user, kind="low_balance", context=context, dedupe_key="low:1")
    assert first.pk == again.pk
    assert Notice.objects.filter(user=user).count() == 1


def test_unknown_kind_is_refused_and_creates_nothing(user):
    """R-NOT-1 / bad input: an unregistered kind is a clear error, nothing is stored,
    and it is not quietly treated as a required kind either."""
    from notices.kinds import is_required

    with pytest.raises(UnknownNoticeKind, match="Unknown notice kind"):
        send_notice(user=user, kind="no_such_kind", context={})
    with pytest.raises(UnknownNoticeKind):
        is_required("no_such_kind")
    assert not Notice.objects.exists()


def test_send_notice_takes_keywords_only(user):
    """One way to raise a notice: keyword arguments, never positional."""
    with pytest.raises(TypeError):
        send_notice(user, "low_balance", {}, "k")  # noqa: the point of the test


def test_every_registered_kind_has_english_and_chinese_templates():
    """R-NOT-1 / R-ADM-6: each registered kind ships subject and body in en and zh-hans,
    as files (a missing translation is not hidden by the English fallback)."""
    from django.template.loader import get_template

    missing = []
    for key in KINDS:
        for name in ("subject.txt", "body.txt", "subject.zh-hans.txt", "body.zh-hans.txt"):
            try:
                get_template(f"notices/{key}/{name}")
            except Exception:  # TemplateDoesNotExist
                missing.append(f"{key}/{name}")
    assert not missing, f"missing notice templates: {missing}"


def test_stored_context_is_plain_json(user):
    """The context as stored: Money as a 2-place string, dates as ISO text."""
    notice = send_notice(
        user=user,
        kind="topup_credited",
        context={"amount": Money("10", "CNY"), "at": datetime.date(2026, 1, 2)},
    )
    assert notice.context == {"amount": "10.00", "at": "2026-01-02"}
    assert "10.00" in notice.subject
