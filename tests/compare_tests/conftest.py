"""One torch thread for the comparison tests: their runs are tiny, and two threads on a shared
2-core machine spend more time waiting for each other than computing."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with ``one_torch_thread`` (``tests/conftest.py``)."""
