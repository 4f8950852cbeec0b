import os
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import create_api_key
from billing.selectors import balance_summary
from billing.services.reconcile import reconcile
from tests.factories import cny  # noqa: F401 - re-exported for the ledger tests


def later(days=30):
    return timezone.now() + timedelta(days=days)


def summary(account):
    """balance_summary as plain Decimals, for compact assertions."""
    return {k: v.amount for k, v in balance_summary(account).items()}


def assert_reconciled(account=None):
    report = reconcile(account)
    assert report.ok, report.summary()


def run_threads(n, target):
    """Start n threads at once (barrier), each with its own DB connection; collect results."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def work(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


@pytest.fixture
def api_key(user):
    key, raw = create_api_key(user, name="test")
    key.raw = raw
    return key


@pytest.fixture(autouse=True)
def _restore_async_unsafe():
    """The shared `browser` fixture sets DJANGO_ALLOW_ASYNC_UNSAFE for good; put the
    environment back so later tests (e.g. `check --deploy` in a subprocess) don't
    inherit it."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    yield
    if before is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
