"""The history on disk, without sockets: a real file read back after a restart or a crash,
compacted as it grows, and private to the bridge's user."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from api_rest.events import Reserva, ReservaCreada, catalog
from bridge.history import HistoryFile, saved_lines
from bridge.router import Principal, Router
from schemas import Event, Reader, User

READER = Reader(catalog)
WHEN = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
EVERYONE = Principal(user=None, monitor=True)


def event(n: int, user: str | None = None) -> Event:
    """Event ``e<n>`` (``n<n>`` for ``user``), the same bytes each time."""
    if user is None:
        return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}", timestamp=WHEN)
    audience = User(user=user)
    return Event.of(
        ReservaCreada(reserva=Reserva(id=n)), id=f"n{n}", timestamp=WHEN, audience=audience
    )


def line(n: int) -> bytes:
    return event(n).to_json()


class Run:
    """A bridge run: a router whose accepted events go to the file, as the hub records them."""

    def __init__(
        self, path: Path, *, size: int = 10, compact_every: int = 1000, ttl: float = 3600
    ) -> None:
        self.router: Router[object] = Router(history_size=size, history_ttl=ttl)  # type: ignore[type-var]
        self.file = HistoryFile(
            path,
            reader=READER,
            saved=partial(saved_lines, self.router.streams),
            compact_every=compact_every,
        )
        self.router.restore(self.file.open())

    def accept(self, item: Event, received: float | None = None) -> None:
        entry = self.router.accept(item, received)
        assert entry is not None
        self.file.append(entry)

    def ids(self, principal: Principal = EVERYONE) -> list[str]:
        return [e.id for e in self.router.history(principal)]


def bodies(path: Path) -> list[bytes]:
    """The events in the file, as JSON, without the time each line starts with."""
    return [line.partition(b" ")[2] for line in path.read_bytes().splitlines()]


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


def saved(path: Path, numbers: range, *, size: int = 10, compact_every: int = 1000) -> None:
    """A bridge run that accepts events ``numbers`` and stops."""
    run = Run(path, size=size, compact_every=compact_every)
    for n in numbers:
        run.accept(event(n))
    run.file.close()


def reopened(path: Path, *, size: int = 10, compact_every: int = 1000) -> Run:
    """The next bridge run, with what it read back."""
    run = Run(path, size=size, compact_every=compact_every)
    run.file.close()
    return run


def test_a_first_start_has_no_history_and_creates_the_file(path: Path) -> None:
    assert reopened(path).ids() == []
    assert path.read_bytes() == b""


def test_events_appended_come_back_in_order_after_a_restart(path: Path) -> None:
    saved(path, range(3))
    run = reopened(path)
    assert run.ids() == ["e0", "e1", "e2"]
    assert [e.json for e in run.router.history(EVERYONE)] == [line(n) for n in range(3)]


def test_a_restart_appends_after_what_the_last_run_saved(path: Path) -> None:
    saved(path, range(2))
    saved(path, range(2, 4))
    assert reopened(path).ids() == ["e0", "e1", "e2", "e3"]


def test_only_the_last_size_events_of_each_stream_come_back(path: Path) -> None:
    run = Run(path, size=3)
    for n in range(5):
        run.accept(event(n))
        run.accept(event(n, user="u1"))
    run.file.close()
    assert reopened(path, size=3).ids() == ["e2", "n2", "e3", "n3", "e4", "n4"]


def test_each_event_is_on_disk_as_soon_as_it_is_appended(path: Path) -> None:
    """Before the message is acknowledged, and with no close: a SIGKILL loses nothing."""
    run = Run(path)
    try:
        run.accept(event(0))
        assert bodies(path) == [line(0)]
        run.accept(event(1))
        assert reopened(path).ids() == ["e0", "e1"]
    finally:
        run.file.close()


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_rest_kept(path: Path) -> None:
    saved(path, range(3))
    with path.open("ab") as file:
        file.write(b"1.0 " + line(3)[: len(line(3)) // 2])  # killed halfway through a write
    assert reopened(path).ids() == ["e0", "e1", "e2"]


def test_the_first_event_saved_after_a_crash_survives_the_next_restart(path: Path) -> None:
    saved(path, range(2))
    with path.open("ab") as file:
        file.write(line(2)[:20])
    saved(path, range(3, 4))
    assert reopened(path).ids() == ["e0", "e1", "e3"]


def test_a_file_of_an_earlier_version_without_times_is_read(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(line(0) + b"\n" + line(1) + b"\n")
    assert reopened(path).ids() == ["e0", "e1"]


def test_an_events_age_counts_across_a_restart(path: Path) -> None:
    run = Run(path, ttl=60)
    run.accept(event(0), received=time.time() - 120)
    run.accept(event(1))
    run.file.close()
    again = Run(path, ttl=60)
    again.file.close()
    assert again.ids() == ["e1"]


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
    assert reopened(path).ids() == ["e0", "e1"]
    [record] = [r for r in caplog.records if r.name == "bridge.history"]
    assert record.getMessage() == "history line skipped"
    assert record.__dict__["path"] == str(path)
    assert record.__dict__["reason"]


def test_the_file_is_compacted_to_what_the_history_holds(path: Path) -> None:
    run = Run(path, size=3, compact_every=12)
    try:
        for n in range(12):
            run.accept(event(n))
        assert len(bodies(path)) == 12  # not yet
        grown = path.stat().st_size
        run.accept(event(12))
        # The events kept, and the positions of the others: a client may resume after them.
        lines = path.read_bytes().splitlines()
        assert [b.partition(b" ")[2] for b in lines[-3:]] == [line(10), line(11), line(12)]
        assert [b.partition(b" ")[2] for b in lines[:2]] == [b"=e0 all", b"=e1 all"]
        assert path.stat().st_size < grown
        run.accept(event(13))  # appending goes on in the rewritten file
        assert bodies(path)[-1] == line(13)
    finally:
        run.file.close()
    assert reopened(path, size=3).ids() == ["e11", "e12", "e13"]
    assert not path.with_suffix(".tmp").exists()


def test_a_restart_after_compaction_still_knows_which_streams_lost_events(path: Path) -> None:
    run = Run(path, size=3, compact_every=12)
    run.accept(event(0))
    run.accept(event(0, user="u1"))  # what the client saw last
    for n in range(1, 20):
        run.accept(event(n))  # the broadcasts go on; the user's stream loses nothing
    run.file.close()
    restarted = reopened(path, size=3, compact_every=12)
    for again in (restarted, run):
        after = again.router.seq_of("n0")
        assert after is not None
        user = Principal("u1").streams
        replay, lost = again.router.replay(user, after, until=again.router.head)
        assert lost == ["all"]
        assert replay == []


def test_a_file_grown_too_long_before_a_restart_is_compacted_at_the_first_event(
    path: Path,
) -> None:
    saved(path, range(20), size=10, compact_every=1000)  # a run that compacts less often
    run = Run(path, size=3, compact_every=5)
    assert run.ids() == ["e17", "e18", "e19"]
    assert len(bodies(path)) == 20
    run.accept(event(20))
    run.file.close()
    assert bodies(path)[-3:] == [line(18), line(19), line(20)]
    assert len(bodies(path)) == 21  # with the others' positions


def test_the_file_and_its_folder_are_the_bridge_users_only(path: Path, open_umask: None) -> None:
    """Events may carry personal data; the state folder's parent may be a shared one."""
    saved(path, range(1), size=1)
    assert (path.parent.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)


def test_the_compacted_file_is_the_bridge_users_only_too(path: Path, open_umask: None) -> None:
    saved(path, range(5), size=1, compact_every=4)  # compacted once, at the fifth
    assert bodies(path)[-1] == line(4)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_history_left_readable_by_others_is_made_private_on_open(path: Path) -> None:
    saved(path, range(1))
    path.chmod(0o644)
    assert reopened(path).ids() == ["e0"]
    assert path.stat().st_mode & 0o777 == 0o600
