"""The history, per stream, with a size and an age: what ``resume`` replays. No I/O.

Every event belongs to one *stream*, named after its audience (``all``,
``role:<role>``, ``user:<id>``, ``channel:<channel>``: see
:func:`schemas.audience.stream_of`). Each stream keeps its own last ``size``
events, none older than ``ttl`` seconds, so a user's notifications are not
pushed out by a busy stream of broadcasts.

Beside the streams, a log keeps the *position* of every recent event (its
number and id, not its body), the ``max_ids`` newest ones, or fewer once they
are older than ``ttl``. It answers two questions: has this id been seen (an
event redelivered by RabbitMQ reaches nobody twice), and where does a
resuming client stand. A stream remembers the number of the newest event it
let go (``dropped``): a client that resumes from an older position has lost
that stream's missed events, and is told so, while the other streams replay.

Bounds: at most ``max_ids`` positions, at most as many events kept (each
event kept has a position), and at most ``max_bytes`` of their JSON; a
stream with nothing kept and nothing to say is forgotten with its last
position.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Entry", "Streams"]


@dataclass(slots=True)
class Entry:
    """An accepted event, numbered in arrival order and encoded once for every recipient."""

    seq: int
    id: str
    #: The stream it belongs to, after its audience.
    stream: str
    json: bytes
    #: When the bridge accepted it (seconds since the epoch): its age counts from here.
    received: float = 0.0
    #: The event framed for each transport, by its framing, built on first use
    #: (see :class:`bridge.session.Framing`).
    framed: dict[object, bytes] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class _Stream:
    name: str
    #: Oldest first. A list: most streams hold a few events, and a list of one costs
    #: a tenth of a deque's 64-slot block.
    entries: list[Entry] = field(default_factory=list)
    #: The number of the newest event that left it: resuming from before it loses events.
    dropped: int = 0


class Streams:
    """Bounded histories by stream, and the positions of recent events.

    Args:
        size: events each stream keeps.
        ttl: seconds an event is kept, in its stream and as a position.
        max_ids: positions kept: how far back a client may resume, and how many
            ids are remembered to drop duplicates.
        min_ids: positions kept whatever their age, so that duplicates are still
            dropped when the ``ttl`` is short.
        max_bytes: bytes of JSON kept for every stream together.
    """

    def __init__(
        self,
        *,
        size: int,
        ttl: float,
        max_ids: int,
        min_ids: int = 0,
        max_bytes: int,
    ) -> None:
        self.size = size
        self.ttl = ttl
        self.max_ids = max(max_ids, 1)
        self.min_ids = min(min_ids, self.max_ids)
        self.max_bytes = max_bytes
        self._streams: dict[str, _Stream] = {}
        # (number, received, id, stream) of every recent event, oldest first.
        self._log: deque[tuple[int, float, str, _Stream]] = deque()
        self._ids: dict[str, int] = {}
        #: Bytes of JSON kept.
        self.bytes = 0

    def __contains__(self, event_id: str) -> bool:
        """Whether ``event_id`` is among the recent positions (seen before)."""
        return event_id in self._ids

    def __len__(self) -> int:
        """Positions kept."""
        return len(self._log)

    @property
    def streams(self) -> int:
        """Streams with events kept or losses to report."""
        return len(self._streams)

    def add(self, entry: Entry) -> None:
        """Keep ``entry`` (numbered after every earlier one) in its stream."""
        stream = self._stream(entry.stream)
        self._log.append((entry.seq, entry.received, entry.id, stream))
        self._ids[entry.id] = entry.seq
        entries = stream.entries
        entries.append(entry)
        self.bytes += len(entry.json)
        if len(entries) > self.size:
            self._drop(stream, 1)
        self._expire(stream, entry.received)
        self._trim(entry.received)

    def skip(self, event_id: str, seq: int, stream_name: str, received: float) -> None:
        """Record the position of an event whose body is gone (a restart's saved history):
        its stream lost it."""
        stream = self._stream(stream_name)
        self._log.append((seq, received, event_id, stream))
        self._ids[event_id] = seq
        stream.dropped = max(stream.dropped, seq)
        self._trim(received)

    def seq_of(self, event_id: str) -> int | None:
        """The number of a recent event by id."""
        return self._ids.get(event_id)

    def replay(
        self, names: Iterable[str] | None, after: int, *, until: int, now: float
    ) -> tuple[list[Entry], list[str]]:
        """The events of the ``names`` streams (every stream for ``None``) numbered after
        ``after`` up to ``until``, oldest first, and the streams that lost some of them
        (whose events are left out: the client reloads what they show)."""
        runs: list[list[Entry]] = []
        lost: list[str] = []
        for stream in self._chosen(names):
            self._expire(stream, now)
            if stream.dropped > after:
                # The client reloads what this stream shows: none of its events are due.
                lost.append(stream.name)
                continue
            run = [e for e in stream.entries if after < e.seq <= until]
            if run:
                runs.append(run)
        if len(runs) == 1:
            return runs[0], lost
        return list(heapq.merge(*runs, key=_seq)), lost

    def latest(self, names: Iterable[str] | None) -> Entry | None:
        """The newest event kept in the ``names`` streams (every stream for ``None``)."""
        newest = [s.entries[-1] for s in self._chosen(names) if s.entries]
        return max(newest, key=_seq, default=None)

    def entries(self, names: Iterable[str] | None = None) -> list[Entry]:
        """Every event kept (in the ``names`` streams only, if given), oldest first."""
        return list(heapq.merge(*(s.entries for s in self._chosen(names)), key=_seq))

    def positions(self) -> Iterator[tuple[float, str, str, Entry | None]]:
        """``(received, id, stream, entry)`` of every recent event, oldest first; the
        entry ``None`` where its stream let it go."""
        kept = {e.seq: e for s in self._streams.values() for e in s.entries}
        for seq, at, event_id, stream in self._log:
            yield at, event_id, stream.name, kept.get(seq)

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream(name)
        return stream

    def _chosen(self, names: Iterable[str] | None) -> list[_Stream]:
        """The streams ``names`` (every one for ``None``) that hold or lost anything."""
        if names is None:
            return list(self._streams.values())
        return [s for name in names if (s := self._streams.get(name)) is not None]

    def _drop(self, stream: _Stream, count: int) -> None:
        gone = stream.entries[:count]
        del stream.entries[:count]
        stream.dropped = gone[-1].seq
        self.bytes -= sum(len(e.json) for e in gone)

    def _expire(self, stream: _Stream, now: float) -> None:
        cutoff = now - self.ttl
        entries = stream.entries
        old = 0
        while old < len(entries) and entries[old].received < cutoff:
            old += 1
        if old:
            self._drop(stream, old)

    def _trim(self, now: float) -> None:
        """Let the oldest positions go, with their events: past ``max_ids``, past
        ``max_bytes``, or older than ``ttl`` beyond the ``min_ids`` newest."""
        log, cutoff = self._log, now - self.ttl
        while log and (
            len(log) > self.max_ids
            or self.bytes > self.max_bytes
            or (len(log) > self.min_ids and log[0][1] < cutoff)
        ):
            seq, _, event_id, stream = log.popleft()
            self._ids.pop(event_id, None)
            if stream.entries and stream.entries[0].seq == seq:
                self._drop(stream, 1)
            # Nothing kept and no loss a client could still resume across: forget it.
            forget = not stream.entries and stream.dropped <= seq
            if forget and self._streams.get(stream.name) is stream:
                del self._streams[stream.name]


def _seq(entry: Entry) -> int:
    return entry.seq
