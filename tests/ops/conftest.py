import pytest

from ops import framework, tasks


@pytest.fixture
def temp_job():
    """Register throw-away jobs for a test and remove them afterwards."""
    added = []

    def register(name, fn, **options):
        options.setdefault("schedule", 60)
        framework.job(name, **options)(fn)
        added.append(name)
        tasks.task_for(framework.REGISTRY[name])
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
