import datetime
import threading

import pytest
from django.db import connection

from notices.jobs import deliver_notices
from notices.models import Notice
from notices.services import (
    CLAIM_SECONDS,
    backoff,
    claim_due_notices,
    deliver_due_notices,
    send_notice,
    set_email_preferences,
)

pytestmark = pytest.mark.django_db

SEC = datetime.timedelta(seconds=1)
CONTEXT = {
    "version": "2026.2",
    "effective_at": datetime.datetime(2027, 1, 1, 4, tzinfo=datetime.UTC),
}


def make(user, kind="agreement_published", key=None):
    return send_notice(user=user, kind=kind, context=CONTEXT, dedupe_key=key)


def test_delivery_sends_email_and_records_send_date(user, clock, recording_email):
    """R-NOT-1 / §11.3: sent by email; the send date is stored as the delivery date."""
    notice = make(user)
    assert deliver_notices(clock, 100) == 1
    notice.refresh_from_db()
    assert notice.status == "sent"
    assert notice.sent_at is not None and notice.sent_at == notice.email_sent_at
    assert notice.attempts == 1
    assert [m.to for m in recording_email.sent] == [[user.email]]
    assert recording_email.sent[0].subject == "Service agreement 2026.2 takes effect on 2027-01-01"
    # Nothing left to do: a second run sends nothing more.
    assert deliver_notices(clock + SEC, 100) == 0
    assert len(recording_email.sent) == 1


def test_smtp_failure_is_retried_with_backoff_without_duplicates(user, clock, recording_email):
    """R-NOT-1: an SMTP failure is retried after a back-off and the email goes out once."""
    recording_email.reset(failures=1)
    notice = make(user)
    deliver_notices(clock, 100)
    notice.refresh_from_db()
    assert notice.status == "failed"
    assert "SMTPServerDisconnected" in notice.last_error
    assert notice.next_attempt_at == clock + backoff(1)
    assert recording_email.sent == []
    # Not yet due: nothing happens.
    assert deliver_notices(clock + backoff(1) - SEC, 100) == 0
    # Due: sent once.
    assert deliver_notices(clock + backoff(1), 100) == 1
    notice.refresh_from_db()
    assert (notice.status, notice.attempts, notice.last_error) == ("sent", 2, "")
    for minutes in (5, 60, 600):
        deliver_notices(clock + datetime.timedelta(minutes=minutes), 100)
    assert len(recording_email.sent) == 1


def test_gives_up_after_max_attempts(user, clock, recording_email, settings):
    """R-NOT-1: delivery gives up after NOTICE_MAX_ATTEMPTS and stops retrying."""
    settings.NOTICE_MAX_ATTEMPTS = 3
    recording_email.reset(always_fail=True)
    notice = make(user)
    now = clock
    for _ in range(5):
        deliver_notices(now, 100)
        now += datetime.timedelta(days=1)
    notice.refresh_from_db()
    assert (notice.status, notice.attempts, notice.next_attempt_at) == ("gave_up", 3, None)


def test_backoff_is_exponential_and_capped(settings):
    settings.NOTICE_RETRY_BASE_SECONDS = 60
    settings.NOTICE_RETRY_MAX_SECONDS = 3600
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert backoff(20).total_seconds() == 3600


def test_sms_for_urgent_kinds_and_no_resend_of_email_when_sms_fails(
    user, clock, recording_email, sms_outbox, settings
):
    """R-NOT-1: SMS through the pluggable backend; a failed SMS retry never re-sends email."""
    user.phone = "13800001111"
    user.save()
    settings.SMS_BACKEND = "tests.backends.FailingSMSBackend"
    notice = make(user, kind="service_stopped")
    deliver_notices(clock, 100)
    notice.refresh_from_db()
    assert notice.status == "failed" and notice.email_sent_at and not notice.sms_sent_at
    assert "sms: ConnectionError" in notice.last_error
    settings.SMS_BACKEND = "notices.sms.LocmemSMSBackend"
    deliver_notices(clock + backoff(1), 100)
    notice.refresh_from_db()
    assert notice.status == "sent" and notice.sms_sent_at
    assert notice.sent_at == notice.email_sent_at  # delivered on the first send date
    assert len(recording_email.sent) == 1
    assert len(sms_outbox) == 1 and sms_outbox[0][0] == "13800001111"


def test_opted_out_optional_kind_is_not_emailed_but_required_kind_is(user, clock, recording_email):
    """R-NOT-1: users turn optional kinds off for email; required kinds always go out."""
    set_email_preferences(user, [])  # everything optional off
    optional = make(user, kind="topup_credited", key="a")
    required = make(user, kind="service_stopped", key="b")
    deliver_notices(clock, 100)
    optional.refresh_from_db()
    required.refresh_from_db()
    assert optional.status == "skipped" and optional.sent_at is None
    assert required.status == "sent"
    assert [m.subject for m in recording_email.sent] == ["Service stopped: your balance is used up"]


def test_preferences_cannot_turn_off_required_kinds_and_refuse_unknown(user):
    """R-NOT-1: legally required kinds cannot be turned off; unknown kinds are refused."""
    opted_out = set_email_preferences(user, ["low_balance"])
    assert "topup_credited" in opted_out
    assert "service_stopped" not in opted_out
    assert "low_balance" not in opted_out
    with pytest.raises(ValueError):
        set_email_preferences(user, ["bogus"])
    assert set(user.notice_email_opt_outs.values_list("kind", flat=True)) == opted_out


def test_crashed_worker_claim_is_retried_after_the_claim_lease(user, clock, recording_email):
    """A worker that dies after claiming leaves the notice to be sent later, exactly once."""
    notice = make(user)
    assert claim_due_notices(clock, 10) == [notice.pk]  # ...and the worker dies here
    assert deliver_due_notices(clock + SEC, 10) == 0
    assert deliver_due_notices(clock + datetime.timedelta(seconds=CLAIM_SECONDS), 10) == 1
    notice.refresh_from_db()
    assert notice.status == "sent" and notice.attempts == 2
    assert len(recording_email.sent) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_delivery_sends_each_notice_once(clock, recording_email):
    """R-NOT-1 on PostgreSQL: four workers at once (SKIP LOCKED) send every notice once."""
    from tests.factories import UserFactory

    users = [UserFactory(phone="") for _ in range(4)]
    ids = [make(users[i % 4], key=f"k{i}").pk for i in range(60)]
    barrier = threading.Barrier(4)
    errors = []

    def worker():
        try:
            barrier.wait()
            while deliver_due_notices(clock, 5):
                pass
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Notice.objects.filter(id__in=ids, status="sent").count() == 60
    sent_ids = sorted(int(m.extra_headers["X-Portal-Notice"]) for m in recording_email.sent)
    assert sent_ids == sorted(ids)


def test_send_notice_then_deliver_in_users_language(zh_user, clock, recording_email):
    send_notice(user=zh_user, kind="service_stopped", context={}, dedupe_key="stop:1")
    deliver_notices(clock, 10)
    assert "服务已暂停" in recording_email.sent[0].subject
