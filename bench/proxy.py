"""A TCP proxy to RabbitMQ that refuses, then forwards again: RabbitMQ down for one client.

``bench/producer.py`` puts a process's sender, then the outbox relay, behind it. The
tests have their own (``tests/django/proxy.py``); bench does not import ``tests/``,
so it has this one.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
from urllib.parse import urlsplit

__all__ = ["Proxy"]

HOST = "127.0.0.1"
#: Longest wait for RabbitMQ to accept a forwarded connection, in seconds.
CONNECT_TIMEOUT = 5
CHUNK = 65536


class Proxy:
    """Listens on a port of its own and forwards to the host and port of ``target_url``.

    :meth:`down` cuts the connections it forwards and closes new ones as soon as they
    are accepted: to a client, RabbitMQ is unreachable. :meth:`up` forwards again.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._server = _Server((parts.hostname or HOST, parts.port or 5672))
        userinfo, at, _ = parts.netloc.rpartition("@")
        address = f"{HOST}:{self._server.server_address[1]}"
        self._url = parts._replace(netloc=userinfo + at + address).geturl()
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        """``target_url`` with this proxy's address instead of RabbitMQ's."""
        return self._url

    def down(self) -> None:
        self._server.forwarding = False
        self._server.cut()

    def up(self) -> None:
        self._server.forwarding = True

    def close(self) -> None:
        self.down()
        self._server.shutdown()
        self._server.server_close()


class _Server(socketserver.ThreadingTCPServer):
    """One thread per accepted connection, which forwards both ways (:class:`_Forward`)."""

    daemon_threads = True

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__((HOST, 0), _Forward)
        self.target = target
        self.forwarding = True
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)

    def cut(self) -> None:
        """Shut every forwarded connection down; their threads then close them."""
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Forward(socketserver.BaseRequestHandler):
    """Copies bytes both ways until either side closes or :meth:`_Server.cut` shuts them."""

    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        if not self.server.forwarding:
            return  # the server closes it
        try:
            upstream = socket.create_connection(self.server.target, timeout=CONNECT_TIMEOUT)
        except OSError:
            return
        with upstream:
            upstream.settimeout(None)
            self.server.track(client, upstream)
            try:
                if self.server.forwarding:  # else down() came since, and may have missed these
                    _copy_both_ways(client, upstream)
            finally:
                self.server.untrack(client, upstream)


def _copy_both_ways(one: socket.socket, other: socket.socket) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(one, selectors.EVENT_READ, (one, other))
        selector.register(other, selectors.EVENT_READ, (other, one))
        while True:
            for key, _ in selector.select():
                source, sink = key.data
                try:
                    data = source.recv(CHUNK)
                    if not data:
                        return
                    sink.sendall(data)
                except OSError:
                    return
