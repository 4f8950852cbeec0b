import pytest

from notices.sms import LocmemSMSBackend
from tests.factories import UserFactory


@pytest.fixture
def sms_outbox(settings):
    settings.SMS_BACKEND = "notices.sms.LocmemSMSBackend"
    LocmemSMSBackend.outbox = []
    yield LocmemSMSBackend.outbox
    LocmemSMSBackend.outbox = []


@pytest.fixture
def zh_user(db):
    return UserFactory(language="zh-hans", phone="")
