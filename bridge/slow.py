"""When a client is too slow to keep: the policy, apart from any socket.

A connection's writes never wait: what the client has not read waits in its
transport's buffer. Each client may leave ``max_send_buffer`` bytes unread,
plus what is left of a burst the bridge chose to send at once (a resume's
replay: its *allowance*). Past that it is dropped, and resumes when it
reconnects. All clients together may hold ``max_queued_bytes``: past that,
any client with more than :data:`BEHIND` unread goes first.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BEHIND", "Verdict", "judge"]

#: A client with more than this waiting is behind: the first to go when all clients
#: together hold too much (``max_queued_bytes``).
BEHIND = 64 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a client, given what it left unread."""

    #: The bound it broke (``max_send_buffer`` or ``max_queued_bytes``), or None to keep it.
    broke: str | None
    #: Bytes of a burst it may still leave unread.
    allowance: int


def judge(
    buffered: int, *, allowance: int, queued: int, max_send_buffer: int, max_queued_bytes: int
) -> Verdict:
    """Whether a client with ``buffered`` bytes unread may stay, and its allowance left.

    ``queued`` is what all clients together leave unread.
    """
    if queued > max_queued_bytes and buffered > BEHIND:
        return Verdict("max_queued_bytes", allowance)
    if buffered <= max_send_buffer:
        return Verdict(None, 0)
    # Drained bytes of a burst need no more allowance.
    allowance = min(allowance, buffered)
    if buffered <= max_send_buffer + allowance:
        return Verdict(None, allowance)
    return Verdict("max_send_buffer", allowance)
