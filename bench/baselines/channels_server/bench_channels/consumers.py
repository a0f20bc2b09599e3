"""The one consumer: every connection joins the group ``all``."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

__all__ = ["GROUP", "EventConsumer"]

#: The group every connection joins; ``channels_publisher.py`` sends to it.
GROUP = "all"
WELCOME = '{"type": "bridge:welcome"}'
PONG = '{"type": "bridge:pong"}'


class EventConsumer(AsyncWebsocketConsumer):
    """Forwards each ``event.message`` of the group as one text frame, as it is.

    Like ``bench/baseline_broadcast.py`` it sends ``bridge:welcome`` first and
    ``bridge:pong`` for anything a client sends, so the benchmark's clients
    treat every server alike.
    """

    groups = [GROUP]  # noqa: RUF012 - Channels reads this class attribute

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=WELCOME)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=PONG)

    async def event_message(self, event: dict[str, Any]) -> None:
        """Handler of ``group_send(GROUP, {"type": "event.message", "text": ...})``."""
        await self.send(text_data=event["text"])
