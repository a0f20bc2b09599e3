"""Resume: what a reconnecting client missed, put ahead of its live events. No I/O.

The history (:meth:`~bridge.router.Router.replay`) gives the events after the
client's last id in the streams it belongs to; its mailbox
(:meth:`~bridge.mailbox.Mailbox.resume`) merges them with the live events held
since it joined, so that each arrives once and in order. A stream that let
some of those events go is *lost*: the client gets ``bridge:reset`` naming it,
and the other streams' events still follow. When the id itself is no longer
known, or newer events already went out, every stream is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.mailbox import Mailbox
from bridge.router import Router

__all__ = ["resume"]


def resume(
    router: Router[Any], streams: Sequence[str] | None, mailbox: Mailbox, after: str | None
) -> list[str]:
    """Queue what was missed in ``streams`` (``None``: every stream) after event ``after``
    (``None``: the whole history).

    Returns the streams whose missed events are gone, ``[]`` when none is.
    """
    after_seq = 0 if after is None else router.seq_of(after)
    if after_seq is None:
        mailbox.resume(None, None)
        return list(streams or ["*"])
    replay, lost = router.replay(streams, after_seq, until=mailbox.joined)
    if not mailbox.resume(after_seq, replay):
        return list(streams or ["*"])
    return lost
