"""A fake asyncio transport for driving the bridge's connections without a socket.

It keeps what the bridge writes and reports a chosen number of bytes unsent,
so that the slow-client policy and the handshake can be tested byte for byte.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = ["Wire"]


class Wire(asyncio.Transport):
    """A transport that keeps what the bridge writes, with a socket only if given one."""

    def __init__(self, sock: socket.socket | None = None, buffered: int = 0) -> None:
        super().__init__()
        self.out = bytearray()
        self.written = asyncio.Event()
        self.closed = False
        self.buffered = buffered
        self._sock = sock

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data
        self.written.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._sock if name == "socket" and self._sock is not None else default

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Nothing to limit: ``buffered`` says what waits, and the bridge asks it."""

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True
