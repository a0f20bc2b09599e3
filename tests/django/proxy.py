"""A TCP proxy that plays RabbitMQ going away, without stopping the shared RabbitMQ.

Used by the outbox tests (bench has its own, bench/proxy.py: it imports nothing from tests); it imports nothing of Django.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

__all__ = ["Proxy"]


class Proxy:
    """A TCP proxy on a port of its own to ``target`` (``amqp://…`` URL's host and port).

    While :meth:`down`, it accepts connections and closes them at once, and has
    cut those it was forwarding: to a client, RabbitMQ is unreachable. :meth:`up`
    forwards again.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._path = parts.path
        self._userinfo = parts.netloc.rpartition("@")[0]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The target URL with the proxy's address instead of RabbitMQ's."""
        return f"amqp://{self._userinfo}@127.0.0.1:{self.port}{self._path}"

    def down(self) -> None:
        self._forwarding.clear()
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            _shut(sock)

    def up(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        self.down()
        _shut(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._forwarding.is_set():
                _shut(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _shut(source)
        _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
