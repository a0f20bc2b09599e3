"""The history on disk, without sockets: a real file read back after a restart or a crash,
compacted as it grows, and private to the bridge's user."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api_rest.events import Reserva, ReservaCreada, catalog
from bridge.history import HistoryFile
from schemas import Event, Reader

READER = Reader(catalog)
WHEN = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)


def line(n: int) -> bytes:
    """Event ``e<n>`` as the hub records it, the same bytes each time."""
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}", timestamp=WHEN).to_json()


def ids(events: list[Event]) -> list[str]:
    return [event.id for event in events]


def lines_in(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "test.history.jsonl"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Anything the bridge creates would be readable, even writable, by everyone."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def saved(path: Path, numbers: range, *, size: int = 10) -> None:
    """A bridge run that appends events ``numbers`` and stops."""
    history = HistoryFile(path, size=size, reader=READER)
    history.open()
    for n in numbers:
        history.append(line(n))
    history.close()


def reopened(path: Path, *, size: int = 10) -> list[Event]:
    """What the next bridge run reads back."""
    history = HistoryFile(path, size=size, reader=READER)
    try:
        return history.open()
    finally:
        history.close()


def test_a_first_start_has_no_history_and_creates_the_file(path: Path) -> None:
    assert reopened(path) == []
    assert path.read_bytes() == b""


def test_events_appended_come_back_in_order_after_a_restart(path: Path) -> None:
    saved(path, range(3))
    events = reopened(path)
    assert ids(events) == ["e0", "e1", "e2"]
    assert [event.to_json() for event in events] == [line(n) for n in range(3)]


def test_a_restart_appends_after_what_the_last_run_saved(path: Path) -> None:
    saved(path, range(2))
    saved(path, range(2, 4))
    assert ids(reopened(path)) == ["e0", "e1", "e2", "e3"]


def test_only_the_last_size_events_come_back(path: Path) -> None:
    saved(path, range(5), size=3)
    assert ids(reopened(path, size=3)) == ["e2", "e3", "e4"]


def test_each_event_is_on_disk_as_soon_as_it_is_appended(path: Path) -> None:
    """Before the message is acknowledged, and with no close: a SIGKILL loses nothing."""
    history = HistoryFile(path, size=10, reader=READER)
    history.open()
    try:
        history.append(line(0))
        assert lines_in(path) == [line(0)]
        history.append(line(1))
        assert ids(reopened(path)) == ["e0", "e1"]
    finally:
        history.close()


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_rest_kept(path: Path) -> None:
    saved(path, range(3))
    with path.open("ab") as file:
        file.write(line(3)[: len(line(3)) // 2])  # killed halfway through a write
    assert ids(reopened(path)) == ["e0", "e1", "e2"]


def test_the_first_event_saved_after_a_crash_survives_the_next_restart(path: Path) -> None:
    saved(path, range(2))
    with path.open("ab") as file:
        file.write(line(2)[:20])
    saved(path, range(3, 4))
    assert ids(reopened(path)) == ["e0", "e1", "e3"]


@pytest.mark.parametrize(
    "bad",
    [b"not json at all", b'{"hello": "world"}', b"[]", b""],
    ids=["not JSON", "JSON but no event", "a list", "an empty line"],
)
def test_a_line_that_is_not_an_event_is_skipped_with_a_warning(
    path: Path, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    path.write_bytes(line(0) + b"\n" + bad + b"\n" + line(1) + b"\n")
    caplog.set_level(logging.WARNING, logger="bridge.history")
    assert ids(reopened(path)) == ["e0", "e1"]
    [record] = [r for r in caplog.records if r.name == "bridge.history"]
    assert record.getMessage() == "history line skipped"
    assert record.__dict__["path"] == str(path)
    assert record.__dict__["reason"]


def test_the_file_is_compacted_to_the_recent_events_once_it_grows_four_times_the_size(
    path: Path,
) -> None:
    history = HistoryFile(path, size=3, reader=READER)
    history.open()
    try:
        for n in range(12):
            history.append(line(n))
        assert len(lines_in(path)) == 12  # four times the size: not yet
        grown = path.stat().st_size
        history.append(line(12))
        assert lines_in(path) == [line(10), line(11), line(12)]
        assert path.stat().st_size < grown
        history.append(line(13))  # appending goes on in the rewritten file
        assert lines_in(path) == [line(10), line(11), line(12), line(13)]
    finally:
        history.close()
    assert ids(reopened(path, size=3)) == ["e11", "e12", "e13"]
    assert not path.with_suffix(".tmp").exists()


def test_a_file_grown_too_long_before_a_restart_is_compacted_on_open(path: Path) -> None:
    saved(path, range(20), size=10)  # a run with a larger history
    assert ids(reopened(path, size=3)) == ["e17", "e18", "e19"]
    assert lines_in(path) == [line(17), line(18), line(19)]


def test_the_file_and_its_folder_are_the_bridge_users_only(path: Path, open_umask: None) -> None:
    """Events may carry personal data; the state folder's parent may be a shared one."""
    saved(path, range(1), size=1)
    assert (path.parent.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)


def test_the_compacted_file_is_the_bridge_users_only_too(path: Path, open_umask: None) -> None:
    saved(path, range(5), size=1)  # compacted once, at the fifth
    assert lines_in(path) == [line(4)]
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_history_left_readable_by_others_is_made_private_on_open(path: Path) -> None:
    saved(path, range(1))
    path.chmod(0o644)
    assert ids(reopened(path)) == ["e0"]
    assert path.stat().st_mode & 0o777 == 0o600
