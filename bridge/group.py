"""The subscribers of one audience, split by whether they keep up: what delivery loops over.

A subscriber that keeps up is *live*: nothing queued for it, nothing left
unsent in its socket's buffer. Every live subscriber of a transport gets an
event as the same bytes, so a group keeps their writers in tuples, by framing,
and delivering an event to them is one tight loop of writes, as cheap as a
server that does nothing else (``docs/decisions.md``, "The delivery path at the floor").
The tuples are rebuilt only when a member joins, leaves, falls behind or
catches up, at most once per event. Live members that asked for batches
(``?batch=1``) are kept apart: they get one frame per batch window. The others
are *queued*: they get events through their mailbox, where the slow-client
policy and resuming apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from bridge.streams import Entry

__all__ = ["Framer", "Group", "Member", "Writers"]


class Framer(Protocol):
    """What a group needs of a framing (:class:`bridge.session.Framing`)."""

    def events(self, entries: list[Entry], *, batch: bool) -> bytes:
        """``entries`` ready to write."""


#: The writers of a group's live members, by framing: each framing's bytes go to each writer.
Writers = tuple[tuple[Framer, tuple[Callable[[bytes], None], ...]], ...]


class Member(Protocol):
    """What a group needs of a subscriber to write to it directly."""

    #: Whether it keeps up: events go straight to its socket rather than to its mailbox.
    live: bool

    @property
    def batch(self) -> bool:
        """Whether it gets one frame per batch window rather than one per event."""

    @property
    def framing(self) -> Framer:
        """How its transport frames events; members that share it share the bytes."""

    @property
    def write(self) -> Callable[[bytes], None]:
        """Its socket's write: queues bytes for the peer, never waits."""


M = TypeVar("M", bound=Member)


class Group(Generic[M]):
    """The members of one audience: the live ones, one frame per event or per batch
    window, and the queued ones."""

    __slots__ = ("_batch_writers", "_writers", "batched", "live", "queued")

    def __init__(self) -> None:
        self.live: set[M] = set()
        self.batched: set[M] = set()
        self.queued: set[M] = set()
        self._writers: Writers | None = None
        self._batch_writers: Writers | None = None

    def add(self, member: M) -> None:
        """Add ``member`` where its ``live`` and ``batch`` flags say."""
        if not member.live:
            self.queued.add(member)
        elif member.batch:
            self.batched.add(member)
            self._batch_writers = None
        else:
            self.live.add(member)
            self._writers = None

    def discard(self, member: M) -> None:
        if member in self.live:
            self.live.discard(member)
            self._writers = None
        elif member in self.batched:
            self.batched.discard(member)
            self._batch_writers = None
        else:
            self.queued.discard(member)

    def move(self, member: M) -> None:
        """Put a member whose ``live`` flag changed on its new side."""
        self.discard(member)
        self.add(member)

    def writers(self) -> Writers:
        """The writers of the live members that take one frame per event, by framing,
        built again only after a change."""
        if self._writers is None:
            self._writers = _by_framing(self.live)
        return self._writers

    def batch_writers(self) -> Writers:
        """The same, of the live members that take one frame per batch window."""
        if self._batch_writers is None:
            self._batch_writers = _by_framing(self.batched)
        return self._batch_writers

    def __len__(self) -> int:
        return len(self.live) + len(self.batched) + len(self.queued)

    def __iter__(self) -> Iterator[M]:
        yield from self.live
        yield from self.batched
        yield from self.queued

    def __bool__(self) -> bool:
        return bool(self.live or self.batched or self.queued)


def _by_framing(members: set[M]) -> Writers:
    by_framing: dict[Framer, list[Callable[[bytes], None]]] = {}
    for member in members:
        by_framing.setdefault(member.framing, []).append(member.write)
    return tuple((f, tuple(w)) for f, w in by_framing.items())
