"""One WebSocket connection: moves bytes between its transport and the Sans-I/O protocol.

Events reach the socket already framed (:attr:`Entry.frame`, built once for
every recipient) and coalesced: everything queued for a connection in one turn
of the event loop leaves in one write. Only connections that negotiated
compression frame their own messages.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from bridge.mailbox import Mailbox
from bridge.router import ANONYMOUS, Entry, Principal
from bridge.slow import judge
from schemas.protocol import ErrorMessage

if TYPE_CHECKING:
    from bridge.hub import Hub

__all__ = [
    "CLOSE_TOKEN_EXPIRED",
    "CLOSE_TOO_SLOW",
    "CLOSE_UNAUTHORIZED",
    "MAX_CLOSE_REASON",
    "Client",
    "fit_reason",
]

log = logging.getLogger("bridge.ws")

#: Close code for a token that is missing, forged or expired after the handshake.
CLOSE_UNAUTHORIZED = 4401
#: Close code for a connection whose token expired without a ``bridge:refresh``
#: answered: connect again with a new token, and resume.
CLOSE_TOKEN_EXPIRED = 4419
#: Close code for a client that reads too slowly: its send buffer overflowed.
#: It should reconnect and resume.
CLOSE_TOO_SLOW = CloseCode.TRY_AGAIN_LATER  # 1013

_PING = Frame(Opcode.PING, b"").serialize(mask=False)
_ids = itertools.count(1)


class Client:
    """A WebSocket client of the bridge, from the 101 response until the socket closes."""

    __slots__ = (
        "alive",
        "allowance",
        "authenticated",
        "batch",
        "buffered",
        "closing",
        "deflate",
        "expiry",
        "fragment_count",
        "fragments",
        "hub",
        "id",
        "mailbox",
        "opened",
        "principal",
        "protocol",
        "remote",
        "timer",
        "transport",
    )

    def __init__(
        self,
        hub: Hub,
        transport: asyncio.Transport,
        protocol: ServerProtocol,
        *,
        batch: bool,
        remote: str,
    ) -> None:
        self.hub = hub
        self.transport = transport
        self.protocol = protocol
        self.batch = batch
        self.remote = remote
        self.deflate = bool(protocol.extensions)
        self.id = next(_ids)
        self.opened = time.monotonic()
        self.principal: Principal = ANONYMOUS
        self.authenticated = False
        self.mailbox: Mailbox | None = None
        self.alive = True
        #: Bytes of an oversized burst still waiting that do not count as too slow.
        self.allowance = 0
        #: Bytes waiting in the transport before its last write (the hub sums them).
        self.buffered = 0
        self.closing = False
        self.timer: asyncio.TimerHandle | None = None
        #: The token's end: first the refresh request, then the close.
        self.expiry: asyncio.TimerHandle | None = None
        #: A message that comes in fragments: its first frame's opcode, its bytes so far,
        #: and how many fragments came.
        self.fragments: tuple[Opcode, bytearray] | None = None
        self.fragment_count = 0

    # Incoming

    def receive(self, data: bytes) -> None:
        """Feed bytes from the socket; answers control frames and hands text to the hub."""
        self.alive = True
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and not self.closing:
                self._receive_frame(event)
        if not self.closing:
            # Pongs to the client's pings are writes too.
            self._too_slow(self.transport.get_write_buffer_size())
        self._write_protocol_output()

    def _receive_frame(self, frame: Frame) -> None:
        # The protocol checks the order of fragments and the size of the whole
        # message (max_message_size); putting them back together is ours.
        # Only the bytes are kept, and the fragments are counted: empty continuation
        # frames would otherwise pile up without ever reaching the size limit.
        if frame.opcode is Opcode.CONT and self.fragments is not None:
            opcode, buffer = self.fragments
            buffer += frame.data
            self.fragment_count += 1
            if self.fragment_count > self.hub.limits.max_fragments:
                self.close(CloseCode.MESSAGE_TOO_BIG, "too many fragments in one message")
                return
            if not frame.fin:
                return
            data = bytes(buffer)
            self.fragments = None
        elif frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            opcode = frame.opcode
            if not frame.fin:
                self.fragments, self.fragment_count = (opcode, bytearray(frame.data)), 1
                return
            data = bytes(frame.data)
        else:
            return
        if opcode is Opcode.BINARY:
            self.send(ErrorMessage(error="send JSON text frames, not binary ones"))
            return
        try:
            data.decode()
        except UnicodeDecodeError:
            self.close(CloseCode.INVALID_DATA, "text frames must be UTF-8")
            return
        self.hub.on_message(self, data)

    def receive_eof(self) -> None:
        self.protocol.receive_eof()
        self._write_protocol_output()

    # Outgoing

    def send(self, message: BaseModel) -> None:
        """Send one ``bridge:*`` message now, ahead of anything queued."""
        self._write_text(message.model_dump_json().encode())

    def _too_slow(self, buffered: int) -> bool:
        """Close the client if ``buffered`` bytes are more than it may leave unread.

        Every write goes through here, replies and pongs as well as events: a
        client that sends and never reads would otherwise make the bridge hold
        its answers for ever, before authentication as after.
        """
        self.note_buffered(buffered)
        limits = self.hub.limits
        verdict = judge(
            buffered,
            allowance=self.allowance,
            queued=self.hub.queued,
            max_send_buffer=limits.max_send_buffer,
            max_queued_bytes=limits.max_queued_bytes,
        )
        self.allowance = verdict.allowance
        if verdict.broke is None:
            return False
        log.warning(
            "slow client dropped",
            extra={
                "conn": self.id,
                "buffered": buffered,
                "bound": verdict.broke,
                "queued": self.hub.queued,
            },
        )
        self.hub.metrics.slow_clients.inc()
        self.close(CLOSE_TOO_SLOW, "too slow: reconnect and resume")
        return True

    def note_buffered(self, size: int) -> None:
        """Tell the hub how many bytes wait for this client now."""
        self.hub.queued += size - self.buffered
        self.buffered = size

    def flush(self, batch_frame: dict[tuple[int, ...], bytes]) -> None:
        """Write everything queued in one go, or drop the client if it is too far behind."""
        if self.mailbox is None or self.closing or self.transport.is_closing():
            return
        entries = self.mailbox.take()
        if not entries:
            return
        buffered = self.transport.get_write_buffer_size()
        # A client that keeps up has nothing waiting, before or since: nothing to check.
        # What a write leaves waiting is counted at the client's next write (looking
        # right after each one added about 100 ns to every delivery): the total lags by one
        # write per client.
        if (buffered or self.buffered) and self._too_slow(buffered):
            return
        if self.deflate:
            self._write_deflated(entries)
        else:
            if self.batch:
                key = tuple(e.seq for e in entries)
                data = batch_frame.get(key)
                if data is None:
                    payload = b"\n".join(e.json for e in entries)
                    data = batch_frame[key] = Frame(Opcode.TEXT, payload).serialize(mask=False)
            elif len(entries) == 1:
                data = entries[0].frame
            else:
                data = b"".join(e.frame for e in entries)
            self.transport.write(data)
            limit = self.hub.limits.max_send_buffer
            if len(data) > limit and buffered <= limit:
                # One write over the limit, to a client that was keeping up, is a burst the
                # bridge chose to send (a resume's replay, most likely): it may drain it at
                # its own pace. If it stops reading, ``limit`` more gets it dropped.
                self.allowance = self.transport.get_write_buffer_size()

    def ping(self) -> bool:
        """Send a keepalive ping; false if the last one went unanswered (the peer is dead)."""
        if not self.alive:
            return False
        self.alive = False
        self.transport.write(_PING)
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake; the socket is cut if the client does not answer."""
        if self.closing:
            return
        self.closing = True
        # First, whatever happens next: also when the peer started closing, it must not linger.
        self.set_timer(self.hub.limits.close_timeout, self.transport.abort)
        self.cancel_expiry()
        self.hub.leave(self)
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, fit_reason(reason))
            self._write_protocol_output()

    def set_timer(self, delay: float, callback: Callable[[], object]) -> None:
        """Replace this connection's one pending timer."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, callback)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.cancel_expiry()

    def set_expiry(self, delay: float, callback: Callable[[], object]) -> None:
        """Replace the pending step of this connection's token expiry."""
        self.cancel_expiry()
        self.expiry = asyncio.get_running_loop().call_later(max(delay, 0), callback)

    def cancel_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None

    def _write_text(self, payload: bytes) -> None:
        if self.closing or self._too_slow(self.transport.get_write_buffer_size()):
            return
        if self.deflate:
            self.protocol.send_text(payload)
            self._write_protocol_output()
        else:
            self.transport.write(Frame(Opcode.TEXT, payload).serialize(mask=False))

    def _write_deflated(self, entries: list[Entry]) -> None:
        if self.batch:
            self.protocol.send_text(b"\n".join(e.json for e in entries))
        else:
            for entry in entries:
                self.protocol.send_text(entry.json)
        self._write_protocol_output()

    def _write_protocol_output(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            else:
                # The protocol is done: the server closes the TCP connection.
                self.transport.close()


#: A close frame is a control frame: at most 125 bytes, 2 of them the code.
MAX_CLOSE_REASON = 123


def fit_reason(reason: str) -> str:
    """``reason`` cut to what a close frame holds, never in the middle of a character.

    Reasons may quote input (a refused token's header), so their length is the
    sender's choice.
    """
    data = reason.encode()
    if len(data) <= MAX_CLOSE_REASON:
        return reason
    return data[: MAX_CLOSE_REASON - 3].decode(errors="ignore") + "..."
