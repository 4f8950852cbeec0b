import datetime

import pytest
from django.utils import timezone

from notices.sms import LocmemSMSBackend
from tests.factories import UserFactory

from .backends import RecordingEmailBackend


@pytest.fixture
def clock():
    """A fixed 'now' the tests move by hand."""
    return timezone.now().replace(microsecond=0) + datetime.timedelta(days=1)


@pytest.fixture
def recording_email(settings):
    settings.EMAIL_BACKEND = "tests.notices.backends.RecordingEmailBackend"
    RecordingEmailBackend.reset()
    yield RecordingEmailBackend
    RecordingEmailBackend.reset()


@pytest.fixture
def sms_outbox(settings):
    settings.SMS_BACKEND = "notices.sms.LocmemSMSBackend"
    LocmemSMSBackend.outbox = []
    yield LocmemSMSBackend.outbox
    LocmemSMSBackend.outbox = []


@pytest.fixture
def user(db):
    return UserFactory(phone="")


@pytest.fixture
def zh_user(db):
    return UserFactory(language="zh-hans", phone="")
