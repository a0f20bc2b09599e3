"""Resume: what a reconnecting client missed, put ahead of its live events. No I/O.

The history (:meth:`~bridge.router.Router.replay`) gives the events after the
client's last id that it may see; its mailbox (:meth:`~bridge.mailbox.Mailbox.resume`)
merges them with the live events held since it joined, so that each arrives
once and in order. When that cannot be (the id left the history, or newer
events already went out) the client gets ``bridge:reset`` instead.
"""

from __future__ import annotations

from typing import Any

from bridge.mailbox import Mailbox
from bridge.router import Principal, Router

__all__ = ["resume"]


def resume(router: Router[Any], principal: Principal, mailbox: Mailbox, after: str | None) -> bool:
    """Queue what ``principal`` missed after event ``after`` (``None``: the whole history).

    Returns false when the client must reload its state (``bridge:reset``).
    """
    after_seq = 0 if after is None else router.seq_of(after)
    replay = router.replay(principal, after, until=mailbox.joined)
    return mailbox.resume(after_seq, replay)
