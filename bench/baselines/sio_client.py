"""A cheap socket.io load-generator client: Engine.IO v4 over a plain WebSocket.

It speaks only what the benchmark needs, on a non-blocking socket of its own: it opens
``ws://HOST:PORT/socket.io/?EIO=4&transport=websocket``, answers the open
packet (``0{...}``) with ``40`` to join the default namespace (or
``40/ws,`` to join ``namespace="/ws"``), answers the
server's pings (``2``) with ``3``, and for every ``42["event",DATA]`` (or
``42/ws,["business:event",DATA]`` with ``event="business:event"``) calls
``on_event(DATA, received_at)`` with the bytes of DATA, the event's JSON, as
the server encoded it, and the kernel's receive time (``SO_TIMESTAMPNS``,
CLOCK_REALTIME like ``time.time()``) of the read that completed its frame.

The WebSocket side is :class:`FrameReader`, which the delivery benchmark's plain
client (``bench/deliverybench/clients.py``) shares. With ``deflate=True`` it offers
permessage-deflate as browsers do, and inflates what the server compressed.

    client = await connect(port, lambda data, now: print(bytes(data), now))
    ...
    await client.close()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import socket
import struct
import time
import zlib
from collections.abc import Callable

from websockets.frames import Frame, Opcode

__all__ = ["DEFLATE_OFFER", "FrameReader", "OnEvent", "SioClient", "connect"]

HOST = "127.0.0.1"
#: The socket.io event the baseline emits.
EVENT = "event"
CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 3.0

#: Called with the event's JSON data and the time it was read.
OnEvent = Callable[[bytes | bytearray, float], None]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_PATH = "/socket.io/?EIO=4&transport=websocket"
#: What every browser offers (RFC 7692).
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
#: The end of every compressed message, which the sender strips (RFC 7692, 7.2.1).
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_EXTENSIONS = re.compile(rb"^sec-websocket-extensions:(.*)$", re.MULTILINE)
#: Initial read buffer per client; it doubles when a read could not fit.
_BUFFER_SIZE = 16 * 1024
#: Kernel receive timestamps as a struct timespec (Linux; Python names no constant).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class FrameReader:
    """The WebSocket client side of the benchmark's clients, cheap to run by the thousand.

    :meth:`open` connects a non-blocking socket of its own and sends the upgrade
    request for ``path``; from then on the event loop calls it when the socket is
    readable (``loop.add_reader``), and it reads with ``recvmsg_into`` into a buffer
    of its own (no allocation per read), one read per wake-up. Every socket has
    ``SO_TIMESTAMPNS`` on, so each read also returns the kernel's receive time of
    the data it returned (CLOCK_REALTIME, as ``time.time()``; for TCP, that of the
    latest segment the read took): that is the time handed on with every message the
    read completed, so a message split over several reads gets the time of the read
    that completed it, and how long the generator took to get round to the socket is
    not in it. It checks the 101 response, parses server frames itself (unmasked,
    unfragmented, as every server measured sends them), answers pings and close
    frames (small writes with ``sock.send``, buffered if the socket is full), and
    hands each text message to :meth:`_text` with that time. With ``deflate=True``
    the request offers permessage-deflate as browsers do; if the server accepts,
    compressed messages (RSV1) are inflated, with a fresh context per message when
    the server said ``server_no_context_takeover``. Subclasses resolve
    :attr:`ready` when the server's greeting arrived.
    """

    #: Reads that came without a kernel timestamp (``time.time()`` was used), all clients.
    untimed_reads = 0

    def __init__(self, port: int, path: str, *, host: str = HOST, deflate: bool = False) -> None:
        key = base64.b64encode(os.urandom(16))
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 - RFC 6455
        offer = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else ""
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        ).encode()
        self._host, self._port = host, port
        self._loop = loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.sock: socket.socket | None = None
        self._unsent = bytearray()
        self._close_when_sent = False
        self._buffer = bytearray(_BUFFER_SIZE)
        self._filled = 0
        self._upgraded = False
        #: Whether the server accepted permessage-deflate.
        self.compressed = False
        self._inflate: zlib._Decompress | None = None
        self._window_bits = zlib.MAX_WBITS
        self._reset_context = False
        self.closing = False
        self.close_code: int | None = None

    @property
    def is_open(self) -> bool:
        return not self.lost.done() and not self.closing

    # The socket

    async def open(self, *, local_addr: tuple[str, int] | None = None) -> None:
        """Connect and send the upgrade request; :attr:`ready` resolves at the greeting.

        Raises ``OSError`` if the connection could not be made (``lost`` is then done).
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
            if local_addr is not None:
                sock.bind(local_addr)
            await self._loop.sock_connect(sock, (self._host, self._port))
        except BaseException:
            sock.close()
            if not self.lost.done():
                self.lost.set_result(None)
            raise
        if self.lost.done():  # aborted meanwhile
            sock.close()
            raise ConnectionAbortedError("aborted while connecting")
        self.sock = sock
        self._loop.add_reader(sock.fileno(), self._readable)
        self._write(self._request)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        buffer, filled = self._buffer, self._filled
        if len(buffer) - filled < _BUFFER_SIZE // 4:
            larger = bytearray(2 * len(buffer))
            larger[:filled] = buffer[:filled]
            self._buffer = buffer = larger
        try:
            nbytes, ancdata, _, _ = sock.recvmsg_into([memoryview(buffer)[filled:]], _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not nbytes:
            self._lost(None)
            return
        if ancdata:
            # The only ancillary data asked for: SCM_TIMESTAMPNS, a struct timespec.
            seconds, nanoseconds = _TIMESPEC.unpack_from(ancdata[0][2])
            now = seconds + nanoseconds * 1e-9
        else:
            FrameReader.untimed_reads += 1
            now = time.time()
        self._received(filled + nbytes, now)

    def _write(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        if self._unsent:
            self._unsent += data
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):
            self._unsent += data[sent:]
            self._loop.add_writer(sock.fileno(), self._writable)

    def _writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            sent = sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._unsent[:sent]
        if not self._unsent:
            self._loop.remove_writer(sock.fileno())
            if self._close_when_sent:
                self._lost(None)

    def _shut(self) -> None:
        """Close the socket once what is buffered has been sent."""
        if self._unsent:
            self._close_when_sent = True
        else:
            self._lost(None)

    def _lost(self, exc: Exception | None) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            fd = sock.fileno()
            self._loop.remove_reader(fd)
            if self._unsent:
                self._loop.remove_writer(fd)
                self._unsent.clear()
            sock.close()
        if not self.lost.done():
            self.lost.set_result(None)
        if sock is not None and not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before the greeting: {exc}"))

    def _received(self, size: int, now: float) -> None:
        """Parse what the buffer holds, ``size`` bytes; ``now``: when the last read arrived."""
        buffer = self._buffer
        pos = 0 if self._upgraded else self._handshake(buffer, size)
        if pos < 0:
            self._filled = size
            return
        while size - pos >= 2:
            first, length, head = buffer[pos], buffer[pos + 1], 2
            if length & 0x80 or not first & 0x80:
                self._fail("masked or fragmented frame from the server")
                return
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            payload: bytes | bytearray = buffer[pos + head : end]
            if first & 0x40:
                if self._inflate is None:
                    self._fail("compressed frame, but no compression was negotiated")
                    return
                payload = self._inflated(payload)
            self._frame(first & 0x0F, payload, now)
            pos = end
        # Keep the start of an incomplete frame; same-length slice assignment, no resize.
        self._filled = size - pos
        if pos and self._filled:
            buffer[: self._filled] = buffer[pos:size]

    # WebSocket

    def _handshake(self, buffer: bytearray, size: int) -> int:
        """Where the frames start once the 101 response is complete; -1 until then."""
        end = buffer.find(b"\r\n\r\n", 0, size)
        if end < 0:
            return -1
        head = bytes(buffer[:end]).lower().replace(b"\r\n", b"\n")
        if not head.startswith(b"http/1.1 101") or self._accept.lower() not in head:
            self._fail(f"handshake refused: {head.splitlines()[0]!r}")
            return -1
        extensions = b",".join(m[1] for m in _EXTENSIONS.finditer(head))
        if b"permessage-deflate" in extensions:
            self._negotiated(extensions)
        self._upgraded = True
        return end + 4

    def _negotiated(self, extensions: bytes) -> None:
        """The server's permessage-deflate parameters (RFC 7692, 7.1)."""
        self.compressed = True
        params = {
            name.strip(): value.strip().strip(b'"')
            for name, _, value in (p.partition(b"=") for p in extensions.split(b";"))
        }
        self._reset_context = b"server_no_context_takeover" in params
        if bits := params.get(b"server_max_window_bits"):
            self._window_bits = int(bits)
        self._inflate = zlib.decompressobj(-self._window_bits)

    def _inflated(self, payload: bytes | bytearray) -> bytes:
        assert self._inflate is not None
        data = self._inflate.decompress(payload + _DEFLATE_TAIL)
        if self._reset_context:
            self._inflate = zlib.decompressobj(-self._window_bits)
        return data

    def _frame(self, opcode: int, payload: bytes | bytearray, now: float) -> None:
        if opcode == Opcode.TEXT:
            self._text(payload, now)
        elif opcode == Opcode.PING:
            self._send(Frame(Opcode.PONG, bytes(payload)))
        elif opcode == Opcode.CLOSE:
            if self.close_code is None:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closing:
                self.closing = True
                self._send(Frame(Opcode.CLOSE, bytes(payload[:2])))
            self._shut()

    def _text(self, payload: bytes | bytearray, now: float) -> None:
        raise NotImplementedError

    def _send(self, frame: Frame) -> None:
        if not self._close_when_sent:
            self._write(frame.serialize(mask=True))

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        self.abort()

    # Closing

    def abort(self) -> None:
        """Close the socket now, whatever is unsent."""
        self._lost(None)

    def _goodbye(self) -> None:
        """What to send before the close frame."""

    async def close(self) -> None:
        """Close cleanly (code 1000), or cut the connection after a few seconds."""
        if self.is_open:
            self.closing = True
            self._goodbye()
            self._send(Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT)
        self.abort()


# Engine.IO packet types (first byte), and socket.io packets inside "4" messages.
_EIO_OPEN, _EIO_CLOSE, _EIO_PING, _EIO_MESSAGE = ord("0"), ord("1"), ord("2"), ord("4")
_SIO_CONNECT, _SIO_DISCONNECT, _SIO_EVENT, _SIO_CONNECT_ERROR = (
    ord("0"), ord("1"), ord("2"), ord("4"),
)  # fmt: skip


class SioClient(FrameReader):
    """One socket.io client of one namespace; see the module docstring.

    ``connected`` resolves once the server accepted the namespace (``40{...}``),
    ``lost`` once the connection is gone; ``frames`` and ``events`` count what
    arrived.
    """

    def __init__(
        self,
        port: int,
        on_event: OnEvent,
        *,
        host: str = HOST,
        deflate: bool = False,
        namespace: str = "/",
        event: str = EVENT,
    ) -> None:
        super().__init__(port, _PATH, host=host, deflate=deflate)
        self._on_event = on_event
        # A namespace other than "/" is named in every packet: 40/ws, and 42/ws,[...].
        self._namespace = b"" if namespace == "/" else f"{namespace},".encode()
        self._event_prefix = b"2" + self._namespace + f'["{event}",'.encode()
        self.frames = 0
        self.events = 0

    @property
    def connected(self) -> asyncio.Future[None]:
        return self.ready

    # Engine.IO and socket.io

    def _text(self, packet: bytes | bytearray, now: float) -> None:
        self.frames += 1
        kind = packet[0] if packet else -1
        if kind == _EIO_MESSAGE:
            self._message(packet, now)
        elif kind == _EIO_PING:
            self._send(Frame(Opcode.TEXT, b"3" + bytes(packet[1:])))
        elif kind == _EIO_OPEN:
            self._send(Frame(Opcode.TEXT, b"40" + self._namespace))
        elif kind == _EIO_CLOSE:
            self._fail("the server closed the Engine.IO session")

    def _message(self, packet: bytes | bytearray, now: float) -> None:
        kind = packet[1] if len(packet) > 1 else -1
        if kind == _SIO_EVENT:
            if packet.startswith(self._event_prefix, 1):
                self.events += 1
                self._on_event(packet[1 + len(self._event_prefix) : -1], now)
        elif kind == _SIO_CONNECT:
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind in (_SIO_DISCONNECT, _SIO_CONNECT_ERROR):
            self._fail(f"namespace refused: {bytes(packet[:200])!r}")

    def _goodbye(self) -> None:
        # As a browser tab does: leave the namespace, then close.
        self._send(Frame(Opcode.TEXT, b"41" + self._namespace))


async def connect(
    port: int,
    on_event: OnEvent,
    *,
    host: str = HOST,
    deflate: bool = False,
    namespace: str = "/",
    event: str = EVENT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> SioClient:
    """Connect one client and return it once the server accepted its namespace.

    Raises ``OSError`` or ``TimeoutError`` if it could not; the connection is cut then.
    """
    client = SioClient(port, on_event, host=host, deflate=deflate, namespace=namespace, event=event)
    try:
        async with asyncio.timeout(connect_timeout):
            await client.open()
            await client.connected
    except BaseException:
        client.abort()
        raise
    return client
