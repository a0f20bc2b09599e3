"""``pytest_plugins = ["producer.pytest_plugin"]``: the ``sent_events`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from producer.testing import captured_events
from schemas import Event

__all__ = ["sent_events"]


@pytest.fixture
def sent_events() -> Iterator[list[Event]]:
    """The events the test sends, committed ones only (see ``producer.testing``)."""
    with captured_events() as sent:
        yield sent
