"""Fixtures for the trust tests (issue 13): the top-up fixtures, reused."""

import pytest

from tests.topups.conftest import agreement, ready_user  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    """Encrypted documents go to a throwaway folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
