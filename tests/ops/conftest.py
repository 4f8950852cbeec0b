import datetime

import pytest
from django.utils import timezone

from ops import framework
from tests.notices.backends import RecordingEmailBackend


@pytest.fixture
def clock():
    return timezone.now().replace(microsecond=0) + datetime.timedelta(days=1)


@pytest.fixture
def recording_email(settings):
    settings.EMAIL_BACKEND = "tests.notices.backends.RecordingEmailBackend"
    RecordingEmailBackend.reset()
    yield RecordingEmailBackend
    RecordingEmailBackend.reset()


@pytest.fixture
def temp_job():
    """Register throw-away jobs for a test and remove them afterwards."""
    added = []

    def register(name, fn, **options):
        options.setdefault("schedule", 60)
        framework.job(name, **options)(fn)
        added.append(name)
        return framework.REGISTRY[name]

    yield register
    for name in added:
        framework.REGISTRY.pop(name, None)


@pytest.fixture
def celery_eager():
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = before
