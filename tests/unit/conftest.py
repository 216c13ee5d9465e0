"""Unit tests need no cluster and reach no server they did not start (tests/netguard.py)."""
from __future__ import annotations

import pytest

from netguard import Guard


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """The code under test may swallow the refusal (a warning, a retry): the record fails the test."""
    guard = Guard(monkeypatch)
    yield guard
    if guard.attempts:
        pytest.fail("a unit test reached outside itself: " + "; ".join(dict.fromkeys(guard.attempts)), pytrace=False)
