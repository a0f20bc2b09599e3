"""What one connection still has to send: live events, held until it says whether to resume.

Pure logic, no I/O. A new connection is *held*: live events queue up until
its first message or the end of the resume window, so that a ``resume`` sent
right after connecting is answered before any live event, with nothing twice
and nothing out of order.
"""

from __future__ import annotations

from bridge.router import Entry

__all__ = ["Mailbox"]


class Mailbox:
    """Events queued for one connection, in the order the bridge accepted them."""

    __slots__ = ("held", "joined", "last_sent", "pending")

    def __init__(self, *, joined: int) -> None:
        #: The router's head when the connection joined: later events arrive live.
        self.joined = joined
        self.held = True
        self.pending: list[Entry] = []
        #: The number of the newest event handed to the socket.
        self.last_sent = 0

    def push(self, entry: Entry) -> bool:
        """Queue ``entry``; true if it can be sent now, false while held."""
        self.pending.append(entry)
        return not self.held

    def take(self) -> list[Entry]:
        """Everything ready to send, oldest first; the mailbox is left empty."""
        entries, self.pending = self.pending, []
        if entries:
            self.last_sent = entries[-1].seq
        return entries

    def resume(self, after: int | None, replay: list[Entry] | None) -> bool:
        """Put ``replay`` (events after number ``after``) ahead of what is queued.

        Returns false when the connection must get ``bridge:reset`` instead:
        ``after`` is no longer in the history, or newer events already went
        out, so the missed ones could no longer arrive in order.
        """
        self.held = False
        if after is None or replay is None:
            return False
        if replay and replay[0].seq < self.last_sent:
            return False
        self.pending = [e for e in _merged(replay, self.pending) if e.seq > after]
        return True

    def add(self, replay: list[Entry]) -> None:
        """Queue a channel's missed events, just subscribed to: in order among what is
        queued, though events of other streams may already have gone out after them."""
        if replay:
            self.pending = _merged(replay, self.pending)


def _merged(*runs: list[Entry]) -> list[Entry]:
    """The entries of ``runs`` by number, each number once."""
    merged = {e.seq: e for run in runs for e in run}
    return [merged[seq] for seq in sorted(merged)]
