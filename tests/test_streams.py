"""The history by stream, without sockets: sizes, ages, positions and their bounds."""

from __future__ import annotations

from bridge.streams import Entry, Streams


def entry(seq: int, stream: str = "all", at: float = 0.0, size: int = 10) -> Entry:
    return Entry(seq, f"e{seq}", stream, b"x" * size, at)


def streams(**bounds: float) -> Streams:
    settings = {"size": 100, "ttl": 3600.0, "max_ids": 1000, "max_bytes": 10**9, **bounds}
    return Streams(**settings)  # type: ignore[arg-type]


def ids(entries: list[Entry]) -> list[str]:
    return [e.id for e in entries]


def test_each_stream_keeps_its_own_last_n() -> None:
    history = streams(size=2)
    for seq in range(1, 7):
        history.add(entry(seq, "all" if seq % 3 else "user:ana"))
    assert ids(history.entries(["all"])) == ["e4", "e5"]
    assert ids(history.entries(["user:ana"])) == ["e3", "e6"]


def test_a_resume_names_the_streams_that_lost_events_and_replays_the_others() -> None:
    history = streams(size=2)
    for seq in range(1, 7):
        history.add(entry(seq, "all" if seq % 3 else "user:ana"))
    replay, lost = history.replay(["all", "user:ana"], 1, until=6, now=0)
    assert lost == ["all"]  # e2 is gone
    assert ids(replay) == ["e3", "e6"]
    replay, lost = history.replay(["all", "user:ana"], 3, until=5, now=0)
    assert (ids(replay), lost) == (["e4", "e5"], [])


def test_events_older_than_the_ttl_are_gone_and_count_as_lost() -> None:
    history = streams(ttl=60, min_ids=10)  # their positions are still known
    history.add(entry(1, "user:ana", at=0))
    history.add(entry(2, "all", at=100))
    replay, lost = history.replay(["all", "user:ana"], 0, until=2, now=100)
    assert (ids(replay), lost) == (["e2"], ["user:ana"])


def test_positions_are_bounded_and_take_their_events_with_them() -> None:
    history = streams(max_ids=3)
    for seq in range(1, 6):
        history.add(entry(seq, f"user:{seq}"))
    assert len(history) == 3
    assert "e2" not in history
    assert history.seq_of("e3") == 3
    # A stream with nothing left and no loss a client could resume across is forgotten.
    assert history.streams == 3


def test_positions_older_than_the_ttl_go_but_not_the_last_min_ids() -> None:
    history = streams(ttl=10, min_ids=2)
    for seq in range(1, 5):
        history.add(entry(seq, at=seq * 100))
    assert len(history) == 2  # duplicates are still caught among the last two
    assert "e3" in history
    assert "e4" in history


def test_the_bytes_kept_are_bounded() -> None:
    history = streams(max_bytes=25)
    for seq in range(1, 5):
        history.add(entry(seq, size=10))
    assert history.bytes <= 25
    assert ids(history.entries()) == ["e3", "e4"]


def test_a_position_whose_event_is_gone_marks_its_stream_as_lost() -> None:
    history = streams()
    history.add(entry(1, "all"))
    history.skip("e2", 2, "user:ana", received=0)
    assert history.seq_of("e2") == 2
    assert history.replay(["user:ana"], 1, until=2, now=0) == ([], ["user:ana"])
