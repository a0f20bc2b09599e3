"""One bridge instance, assembled: broker in, router and hub, HTTP, WebSocket and SSE out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import mimetypes
import signal
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from importlib import resources
from importlib.metadata import version
from pathlib import Path

from bridge.amqp import RabbitBroker
from bridge.api import Api, StaticFile
from bridge.auth import Authenticator
from bridge.broker import Broker
from bridge.config import SSE_PATH, Settings
from bridge.decode import Decoder
from bridge.handshake import Handshake
from bridge.history import HistoryFile, saved_lines
from bridge.http import HttpServer
from bridge.hub import Hub
from bridge.memory import MemoryBroker
from bridge.metrics import Metrics
from bridge.openapi import openapi
from bridge.roster import Roster
from bridge.router import Router
from bridge.session import Session
from bridge.sse import EventStreams
from bridge.typescript import client_js, client_types
from schemas import Reader
from schemas.protocol import CLOSE_GOING_AWAY

__all__ = ["Bridge", "dashboard_link", "open_broker", "run"]

log = logging.getLogger("bridge")

#: How long a dashboard link printed at startup stays valid.
DASHBOARD_TOKEN_TTL = timedelta(hours=12)


def open_broker(settings: Settings, reader: Reader | None = None) -> Broker:
    """The broker the settings name: the embedded ``memory://`` one, or RabbitMQ.

    RabbitMQ's messages are read with ``reader`` (default: one for the settings).
    """
    if settings.broker_url.startswith("memory://"):
        return MemoryBroker()
    return RabbitBroker(
        settings.broker_url,
        instance=settings.instance,
        prefetch=settings.limits.prefetch,
        decoder=Decoder(
            reader or Reader(settings.catalog, strict=settings.strict_events),
            max_size=settings.limits.max_event_size,
        ),
    )


_TYPES = {".ts": "application/typescript", ".js": "text/javascript"}


def documents(
    reader: Reader, *, api_key: bool = False, public_reads: bool = False
) -> dict[str, StaticFile]:
    """The files served as they are: the OpenAPI document, everything in ``bridge/static``,
    and the browser client's table of event types and ``client.d.ts`` for the catalog."""
    catalog = reader.catalog
    document = openapi(version("event-bridge"), reader, api_key=api_key, public_reads=public_reads)
    served = {"/openapi.json": StaticFile(json.dumps(document).encode(), "application/json")}
    for item in resources.files("bridge").joinpath("static").iterdir():
        body = item.read_bytes()
        if item.name == "client.js":
            body = client_js(body.decode(), catalog).encode()
        served["/" + item.name] = StaticFile(body, _content_type(item.name))
    served["/client.d.ts"] = StaticFile(
        client_types(catalog).encode(), _content_type("client.d.ts")
    )
    return served


def _content_type(name: str) -> str:
    # Python takes .ts for a Qt translation file; here it is TypeScript.
    kind = _TYPES.get(Path(name).suffix) or mimetypes.guess_type(name)[0]
    kind = kind or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith(("javascript", "json")):
        kind += "; charset=utf-8"
    return kind


class Bridge:
    """A bridge instance; :meth:`start` it, then :meth:`stop` it."""

    def __init__(self, settings: Settings, broker: Broker, reader: Reader | None = None) -> None:
        self.settings = settings
        self.broker = broker
        #: Reads what callers publish, strict or not as the settings say.
        self.reader = reader or Reader(settings.catalog, strict=settings.strict_events)
        self.authenticator = Authenticator(
            settings.jwt_secret,
            max_lifetime=timedelta(seconds=settings.max_token_lifetime),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        limits = settings.limits
        self.router: Router[Session] = Router(
            history_size=settings.history_size,
            history_ttl=limits.history_ttl,
            history_ids=limits.history_ids,
            history_bytes=limits.history_bytes,
            dedup_size=limits.dedup_size,
        )
        # The history holds what was delivered: it is read back as it was, even if
        # the bridge is strict now or the catalog changed since.
        lenient = self.reader if not self.reader.strict else Reader(settings.catalog)
        self.history = HistoryFile(
            settings.history_file,
            reader=lenient,
            saved=partial(saved_lines, self.router.streams),
            compact_every=max(limits.history_ids, 1000),
        )
        self.metrics = Metrics(
            connections_by_role=self.router.count_by_role,
            connections=lambda: len(self.hub.sessions),
            broker_connected=lambda: self.broker.connected,
            dead_lettered=lambda: self.broker.dead_lettered,
            queued=lambda: self.hub.queued,
        )
        self.hub = Hub(
            self.router,
            self.authenticator,
            limits=settings.limits,
            instance=settings.instance,
            record=self.history.append,
            metrics=self.metrics,
            catalog=settings.catalog,
        )
        served = documents(
            self.reader, api_key=settings.api_key is not None, public_reads=settings.public_reads
        )
        self.roster = Roster(self.hub, broker, instance=settings.instance, limits=limits)
        self.api = Api(
            settings,
            broker,
            self.hub,
            self.authenticator,
            self.metrics,
            served,
            self.reader,
            self.roster,
        )
        self._server: asyncio.Server | None = None
        self._http: HttpServer | None = None
        self._keepalive: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose, for port 0)."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Load the history, listen, and start consuming."""
        self.router.restore(self.history.open())
        handshake = Handshake(self.hub, self.authenticator, self.settings)
        streams = EventStreams(self.hub, self.authenticator, self.settings)
        self._http = HttpServer(
            self.api.routes(),
            handshake,
            streams={SSE_PATH: streams},
            limits=self.settings.limits,
            metrics=self.metrics,
            sites=self.settings.sites,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._http,
            self.settings.host,
            self.settings.port,
            reuse_port=self.settings.reuse_port or None,
        )
        await self.broker.start(self.hub.on_event, self.roster.received)
        self.roster.start()
        self._keepalive = loop.create_task(self.hub.keepalive())

    async def stop(self) -> None:
        """Stop accepting, settle messages with the broker, close clients with 1001."""
        if self._server is not None:
            self._server.close()
        if self._keepalive is not None:
            self._keepalive.cancel()
        await self.roster.stop()
        await self.broker.close()
        self.hub.close_all(CLOSE_GOING_AWAY, "server shutting down")
        for connection in self._http.connections if self._http is not None else ():
            if connection.stream is None:
                connection.close()  # idle keep-alive HTTP
        await self._clients_gone()
        self.history.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _clients_gone(self) -> None:
        if self.hub.sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.limits.close_timeout + 0.5):
                    await self.hub.emptied.wait()
        for session in list(self.hub.sessions):
            session.link.abort()


def dashboard_link(settings: Settings, port: int) -> str:
    """A link to the dashboard on ``port`` with a monitor token signed with the settings' secret."""
    authenticator = Authenticator(
        settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    token = authenticator.issue("operator", [], ttl=DASHBOARD_TOKEN_TTL, monitor=True)
    host = settings.host if settings.host not in {"0.0.0.0", "::"} else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{port}/dashboard.html#token={token}"


async def run(settings: Settings, announce: Callable[[Bridge], None]) -> None:
    """Run a bridge until SIGTERM or SIGINT, then stop it gracefully."""
    reader = Reader(settings.catalog, strict=settings.strict_events)
    bridge = Bridge(settings, open_broker(settings, reader), reader)
    await bridge.start()
    # What is loaded by now lives as long as the process. Frozen, it is left out
    # of the cyclic collector's full passes, which otherwise stopped delivery
    # for 43-75 ms at a time with 1,000 clients (docs/decisions.md).
    gc.collect()
    gc.freeze()
    announce(bridge)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("shutting down", extra={"connections": len(bridge.hub.sessions)})
    # The contract gives a stop 10 s; a broker that does not answer must not hold it up.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(bridge.stop(), timeout=9)
