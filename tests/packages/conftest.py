from tests.ledger.conftest import _restore_async_unsafe, api_key  # noqa: F401
