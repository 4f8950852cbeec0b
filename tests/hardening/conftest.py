import pytest

from accounts.services import create_api_key
from billing.services.ledger import credit_lot
from tests.factories import cny
from tests.ledger.http import TOKEN, post


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GATEWAY_SERVICE_TOKEN = TOKEN


@pytest.fixture(params=["full", "lean"])
def gw(request, client):
    """POST to the gateway through Django's test client: gw(path, body) -> (status, body);
    each test twice: the full middleware stack and the lean path (billing.lean, issue 25)."""
    from tests.lean import LeanClient

    via = client if request.param == "full" else LeanClient()
    return lambda path, body, **kw: post(via, path, body, **kw)


@pytest.fixture
def api_key(user):
    key, raw = create_api_key(user, name="test")
    key.raw = raw
    return key


@pytest.fixture
def funded(account, api_key):
    credit_lot(account, cny("10.00"), channel="alipay", idempotency_key="fund")
    return api_key
