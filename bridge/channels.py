"""Channels a connection asks for in its request: ``?channels=`` and ``?channel_tokens=``.

A stream (``/sse``) cannot send ``{"op": "subscribe"}``, and a WebSocket that
resumes with ``?after=`` should have its channels before the replay, so both
may name them in the URL: ``?channels=order:42,order:43`` for channels the
connection token allows, ``?channel_tokens=JWT,JWT`` for subscription tokens
(each names its channel). Names and tokens hold no ``,``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["requested"]


def requested(query: Mapping[str, str], limit: int) -> tuple[tuple[str | None, str | None], ...]:
    """``(channel, None)`` for each name, ``(None, token)`` for each token, at most
    ``limit`` + 1 of them (one more than may be subscribed: it is refused, and says so)."""
    names = [(name, None) for name in _split(query.get("channels"))]
    tokens = [(None, token) for token in _split(query.get("channel_tokens"))]
    wanted: list[tuple[str | None, str | None]] = [*names, *tokens]
    return tuple(wanted[: limit + 1])


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]
