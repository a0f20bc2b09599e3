"""The WebSocket opening handshake on ``/ws``: origin, token, then 101 or a refusal."""

from __future__ import annotations

import asyncio
import http
import logging
import socket
from dataclasses import dataclass

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request as WsRequest
from websockets.server import ServerProtocol

from bridge.auth import Authenticator
from bridge.channels import requested
from bridge.config import WS_PATH, Settings
from bridge.exceptions import Unauthorized
from bridge.http import Request
from bridge.hub import Hub
from bridge.router import Principal
from bridge.websocket import WebSocketLink

__all__ = ["Handshake"]

log = logging.getLogger("bridge.ws")


@dataclass(frozen=True)
class Handshake:
    """Accepts or refuses WebSocket upgrades for one bridge instance."""

    hub: Hub
    authenticator: Authenticator
    settings: Settings

    def __call__(
        self, transport: asyncio.Transport, raw: bytes, request: Request
    ) -> WebSocketLink | None:
        """The new connection, or ``None`` once a refusal was written."""
        extensions = [ServerPerMessageDeflateFactory()] if self.settings.compression else None
        protocol = ServerProtocol(
            extensions=extensions, max_size=self.settings.limits.max_message_size
        )
        protocol.receive_data(raw)
        parsed = next((e for e in protocol.events_received() if isinstance(e, WsRequest)), None)
        if parsed is None:
            _write(transport, protocol)
            return None
        principal, refusal = self._check(request)
        if refusal is not None:
            status, text = refusal
            log.info(
                "handshake refused",
                extra={"remote": request.remote, "status": status, "reason": text},
            )
            response = protocol.reject(status, text + "\n")
        else:
            response = protocol.accept(parsed)
        protocol.send_response(response)
        _write(transport, protocol)
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            send_buffer = self.settings.limits.socket_send_buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        link = WebSocketLink(
            transport,
            protocol,
            self.hub,
            batch=request.query.get("batch") == "1",
            remote=request.remote,
            max_fragments=self.settings.limits.max_fragments,
            # Resuming with the request leaves no window for live events to pass the replay.
            after=request.query.get("after") or None,
            wanted=requested(request.query, self.settings.limits.max_channels),
        )
        self.hub.open(link.session, principal, anonymous=self.settings.allow_anonymous)
        return link

    def _check(self, request: Request) -> tuple[Principal | None, tuple[int, str] | None]:
        if request.path != WS_PATH:
            return None, (404, f"WebSocket connections go to {WS_PATH}")
        origin, host = request.headers.get("origin"), request.headers.get("host")
        if not self.settings.sites.origin_allowed(origin, host):
            return None, (403, f"origin {origin} is not allowed; see --allowed-origins")
        token = request.query.get("token")
        if token is None:
            return None, None
        try:
            return self.authenticator.verify(token), None
        except Unauthorized as exc:
            return None, (401, str(exc))


def _write(transport: asyncio.Transport, protocol: ServerProtocol) -> None:
    for data in protocol.data_to_send():
        if data:
            transport.write(data)
