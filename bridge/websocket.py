"""The WebSocket transport: frames, and one connection's bytes through the Sans-I/O protocol.

Events are framed once for every plain connection (:data:`FRAMES` caches the
frame on the :class:`~bridge.router.Entry`) and coalesced by the hub: what is
queued for a connection in one turn of the event loop leaves in one write.
Only connections that negotiated compression frame their own messages
(:class:`Deflated`).
"""

from __future__ import annotations

import asyncio
import logging

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from bridge.router import Entry
from bridge.session import Framing, Inbox, Phase, Session
from schemas.protocol import CLOSE_INTERNAL_ERROR

__all__ = [
    "FRAMES",
    "MAX_CLOSE_REASON",
    "Deflated",
    "WebSocketLink",
    "fit_reason",
]

log = logging.getLogger("bridge.ws")

_PING = Frame(Opcode.PING, b"").serialize(mask=False)


def _text(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


class _Frames:
    """Unmasked text frames, shared by every connection without compression."""

    shared = True

    def events(self, entries: list[Entry], *, batch: bool) -> bytes:
        if batch:
            return _text(b"\n".join(e.json for e in entries))
        if len(entries) == 1:  # the common case: one event per turn of the loop
            return self._one(entries[0])
        return b"".join(self._one(e) for e in entries)

    def _one(self, entry: Entry) -> bytes:
        data = entry.framed.get(self)
        if data is None:
            data = entry.framed[self] = _text(entry.json)
        return data

    def message(self, payload: bytes) -> bytes:
        return _text(payload)

    def reset(self, payload: bytes, latest: str | None) -> bytes:
        return _text(payload)


#: The framing of every WebSocket connection without compression.
FRAMES: Framing = _Frames()


class Deflated:
    """Frames for one connection that negotiated permessage-deflate: its own compressor."""

    __slots__ = ("_protocol",)
    shared = False

    def __init__(self, protocol: ServerProtocol) -> None:
        self._protocol = protocol

    def events(self, entries: list[Entry], *, batch: bool) -> bytes:
        if batch:
            return self.message(b"\n".join(e.json for e in entries))
        return b"".join(self.message(e.json) for e in entries)

    def message(self, payload: bytes) -> bytes:
        if self._protocol.state is not State.OPEN:
            return b""
        self._protocol.send_text(payload)
        return b"".join(self._protocol.data_to_send())

    def reset(self, payload: bytes, latest: str | None) -> bytes:
        return self.message(payload)


class WebSocketLink:
    """One WebSocket connection, from the 101 response until the socket closes.

    It answers the protocol's control frames, puts fragmented messages back
    together, and hands each text message to the hub.
    """

    __slots__ = (
        "_inbox",
        "_max_fragments",
        "abort",
        "alive",
        "buffered",
        "fragment_count",
        "fragments",
        "protocol",
        "session",
        "transport",
        "write",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: ServerProtocol,
        inbox: Inbox,
        *,
        batch: bool,
        remote: str,
        max_fragments: int,
        after: str | None = None,
        wanted: tuple[tuple[str | None, str | None], ...] = (),
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self._inbox = inbox
        self._max_fragments = max_fragments
        # The transport's own methods, not wrappers: the hub calls them once per
        # event and connection, where a Python call more costs about 2 %.
        self.write = transport.write
        self.buffered = transport.get_write_buffer_size
        self.abort = transport.abort
        # Paused as soon as a byte waits: the hub stops writing to it directly.
        # (A pause before this stream took the connection over reached nobody.)
        transport.set_write_buffer_limits(high=0)
        self.alive = True
        #: A message that comes in fragments: its first frame's opcode, its bytes so far,
        #: and how many fragments came.
        self.fragments: tuple[Opcode, bytearray] | None = None
        self.fragment_count = 0
        # Shared frames, or this connection's own when it compresses.
        framing: Framing = Deflated(protocol) if protocol.extensions else FRAMES
        self.session = Session(
            self, framing, transport="ws", batch=batch, remote=remote, after=after, wanted=wanted
        )
        self.session.paused = transport.get_write_buffer_size() > 0

    # Incoming

    def receive(self, data: bytes) -> None:
        """Feed bytes from the socket; answers control frames and hands text to the hub."""
        session, inbox = self.session, self._inbox
        self.alive = True
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and session.phase is not Phase.CLOSING:
                self._receive_frame(event, session, inbox)
        if self.protocol.state is not State.OPEN:
            # The peer started closing (or broke the protocol): nothing more goes to it.
            inbox.close(session, CloseCode.NORMAL_CLOSURE, "")
        else:
            inbox.on_write(session)  # pongs to the client's pings are writes too
        self._write_protocol_output()

    def _receive_frame(self, frame: Frame, session: Session, inbox: Inbox) -> None:
        # The protocol checks the order of fragments and the size of the whole
        # message (max_message_size); putting them back together is ours.
        # Only the bytes are kept, and the fragments are counted: empty continuation
        # frames would otherwise pile up without ever reaching the size limit.
        if frame.opcode is Opcode.CONT and self.fragments is not None:
            opcode, buffer = self.fragments
            buffer += frame.data
            self.fragment_count += 1
            if self.fragment_count > self._max_fragments:
                inbox.close(session, CloseCode.MESSAGE_TOO_BIG, "too many fragments in one message")
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
            inbox.refuse(session, "send JSON text frames, not binary ones")
            return
        try:
            data.decode()
        except UnicodeDecodeError:
            inbox.close(session, CloseCode.INVALID_DATA, "text frames must be UTF-8")
            return
        inbox.on_message(session, data)

    def receive_eof(self) -> bool:
        self.protocol.receive_eof()
        self._write_protocol_output()
        return True  # the protocol closes the transport when it is done

    def pause_writing(self) -> None:
        self._inbox.on_paused(self.session)

    def resume_writing(self) -> None:
        self._inbox.on_resumed(self.session)

    def lost(self) -> None:
        """The socket is gone."""
        reason = self.protocol.close_reason or None
        self._inbox.on_closed(self.session, self.protocol.close_code, reason)

    def fail(self) -> None:
        """Handling its input raised: close this connection only."""
        self._inbox.close(self.session, CLOSE_INTERNAL_ERROR, "internal error")

    # Outgoing

    def ping(self) -> bool:
        """Send a keepalive ping; false if the last one went unanswered (the peer is dead)."""
        if not self.alive:
            return False
        self.alive = False
        self.transport.write(_PING)
        return True

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, fit_reason(reason))
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
