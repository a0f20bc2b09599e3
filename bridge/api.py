"""The HTTP API beside ``/ws``: the seed's endpoints, health, history, stats and metrics.

The POST endpoints publish to RabbitMQ and answer 202 only once the broker
confirmed the event; they never deliver locally, so every instance gets
every event. Bad input gets 400, 401, 413 or 422 with the reason, never a 5xx.
A caller over its rate limit gets 429 with ``Retry-After``; health, metrics
and the static files are never limited.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass
from functools import partial

from bridge.auth import Authenticator
from bridge.broker import Broker
from bridge.config import SSE_PATH, Limits, Settings
from bridge.exceptions import BrokerUnavailable, Unauthorized
from bridge.http import Handler, Request, Response
from bridge.hub import Hub
from bridge.metrics import Metrics
from bridge.ratelimit import RateLimiter
from bridge.roster import Roster
from bridge.router import ANONYMOUS, Principal
from schemas import InvalidEvent, NotJSON, Reader
from schemas.payload import CHANNEL_HINT, CHANNEL_NAME
from schemas.requests import ENDPOINTS

__all__ = ["Api", "StaticFile"]

log = logging.getLogger("bridge.api")

_API_PREFIX = "/api/dashboard/"
_EVERYTHING = Principal(user=None, monitor=True)
_READ_CREDENTIALS = (
    "send a token or the API key as 'Authorization: Bearer ...' "
    "(the bridge runs without --public-reads)"
)


@dataclass(frozen=True)
class StaticFile:
    """A file served as is, loaded once at start-up."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class _Throttle:
    """The HTTP API's rate limits: one budget per address, one for the API key's holders."""

    per_ip: RateLimiter
    per_key: RateLimiter

    @classmethod
    def of(cls, limits: Limits) -> _Throttle:
        return cls(
            RateLimiter(limits.api_rate_per_ip, limits.api_burst_per_ip),
            RateLimiter(limits.api_rate_per_key, limits.api_burst_per_key),
        )

    def refuse(self, request: Request, *, keyed: bool) -> Response | None:
        """Count ``request``: a 429 to send if it is over its limit, else ``None``."""
        limiter = self.per_key if keyed else self.per_ip
        refusal = limiter.check("api-key" if keyed else request.address, time.monotonic())
        if refusal is None:
            return None
        if refusal.first:  # one line per spell of refusals, not one per request
            log.warning(
                "rate limited",
                extra={
                    "remote": request.remote,
                    "limit": "per-key" if keyed else "per-ip",
                    "rate": limiter.rate,
                    "burst": limiter.burst,
                },
            )
        scope = "for the API key" if keyed else "per address"
        message = (
            f"too many requests: at most {limiter.rate:g} per second "
            f"({limiter.burst} at once) {scope}; retry after {refusal.retry_after} s"
        )
        return Response.error(429, message).with_headers(("retry-after", str(refusal.retry_after)))


@dataclass(frozen=True)
class Api:
    """The HTTP endpoints of one bridge instance; :meth:`routes` maps them for the server."""

    settings: Settings
    broker: Broker
    hub: Hub
    authenticator: Authenticator
    metrics: Metrics
    documents: dict[str, StaticFile]
    reader: Reader
    roster: Roster

    def routes(self) -> dict[tuple[str, str], Handler]:
        """Every ``(method, path)`` the bridge answers, with CORS where a browser may call."""
        routes: dict[tuple[str, str], Handler] = {
            ("GET", "/api/health"): self.health,
            ("GET", "/api/dashboard/history"): self.history,
            ("GET", "/api/dashboard/stats"): self.stats,
            ("GET", "/api/presence"): self.presence,
            ("GET", "/metrics"): self.prometheus,
        }
        for name in ENDPOINTS:
            routes["POST", _API_PREFIX + name] = partial(self.publish, name)
        throttle = _Throttle.of(self.settings.limits)
        for key, handler in routes.items():
            if key[1].startswith(_API_PREFIX):
                routes[key] = self._limited(handler, throttle)
        for path, document in self.documents.items():
            routes["GET", path] = partial(_serve, document)
        for _, path in list(routes):
            if path.startswith("/api/"):
                routes["OPTIONS", path] = self.preflight
        # A cross-origin EventSource that reconnects sends Last-Event-ID: a preflight.
        routes["OPTIONS", SSE_PATH] = self.preflight
        return {key: self._with_cors(handler) for key, handler in routes.items()}

    # Publishing

    async def publish(self, endpoint: str, request: Request) -> Response:
        """``POST /api/dashboard/<endpoint>``: validate, publish with a confirm, answer 202."""
        refusal = self._cross_site(request)
        if refusal is not None:
            return refusal
        if not self._has_key(request):
            return Response.error(
                401, "send the API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            )
        try:
            event = self.reader.body(endpoint, request.body)
        except NotJSON as exc:
            return Response.error(400, str(exc))
        except InvalidEvent as exc:
            return Response.json(422, {"error": str(exc), "detail": exc.errors})
        try:
            await self.broker.publish(event)
        except BrokerUnavailable as exc:
            log.warning("event not taken", extra={"endpoint": endpoint, "reason": str(exc)})
            return Response.error(503, f"the event was not taken: {exc}")
        self.metrics.published.labels(endpoint).inc()
        return Response.json(202, {"id": event.id})

    def _cross_site(self, request: Request) -> Response | None:
        """A refusal for a browser's request that a page on another site could have forged.

        Browsers send ``Origin`` on every cross-origin POST; servers and scripts
        (the legacy callers) send none and are not affected. A browser's POST must
        come from an allowed origin and carry JSON, which a plain HTML form or a
        "simple" ``fetch`` cannot send without a CORS preflight.
        """
        origin = request.headers.get("origin")
        if origin is None:
            return None
        if not self.settings.sites.origin_allowed(origin, request.headers.get("host")):
            return Response.error(
                403, f"origin {origin!r} may not publish: add it to --allowed-origins"
            )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            return Response.error(415, "send the body as Content-Type: application/json")
        return None

    def _has_key(self, request: Request) -> bool:
        expected = self.settings.api_key
        if expected is None:
            return True
        given = request.headers.get("x-api-key") or request.bearer or ""
        return hmac.compare_digest(given.encode(), expected.encode())

    # Rate limits

    def _limited(self, handler: Handler, throttle: _Throttle) -> Handler:
        """``handler`` behind the rate limits: a caller over its limit gets 429."""

        async def handle(request: Request) -> Response:
            keyed = self.settings.api_key is not None and self._has_key(request)
            refusal = throttle.refuse(request, keyed=keyed)
            if refusal is None:
                return await handler(request)
            self.metrics.rate_limited.labels("per-key" if keyed else "per-ip").inc()
            return refusal

        return handle

    # Reading

    async def health(self, _request: Request) -> Response:
        """``GET /api/health``: 200 while events flow, 503 while the broker is unreachable."""
        connected = self.broker.connected
        return Response.json(
            200 if connected else 503,
            {
                "status": "ok" if connected else "unavailable",
                "broker": "connected" if connected else "disconnected",
                "connections": len(self.hub.sessions),
                "instance": self.settings.instance,
            },
        )

    async def history(self, request: Request) -> Response:
        """``GET /api/dashboard/history``: the recent events the caller may see, oldest first.

        A dashboard token or the API key sees every event; a client token,
        its audiences; no credentials, with ``--public-reads`` only, the events
        for everyone.
        """
        principal = self._reader(request)
        if isinstance(principal, Response):
            return principal
        visible = [e.json for e in self.hub.router.history(principal)]
        return Response(200, b"[" + b",".join(visible) + b"]")

    async def stats(self, request: Request) -> Response:
        """``GET /api/dashboard/stats``: connections by role, events by type, the dashboard."""
        refusal = self._operators_only(request)
        if refusal is not None:
            return refusal
        snapshot = self.hub.router.snapshot
        return Response.json(
            200,
            {
                "instance": self.settings.instance,
                "broker": "connected" if self.broker.connected else "disconnected",
                "connections": {
                    "total": len(self.hub.sessions),
                    "byRole": self.hub.router.count_by_role(),
                },
                "events": {
                    "byType": dict(sorted(self.hub.counts.by_type.items())),
                    "untypedByType": dict(sorted(self.hub.counts.untyped.items())),
                },
                "catalog": list(self.reader.catalog),
                "dashboard": json.loads(snapshot.json)["data"] if snapshot else None,
            },
        )

    async def presence(self, request: Request) -> Response:
        """``GET /api/presence``: who is connected to every instance on the same RabbitMQ,
        by role, by user and by channel; ``?channel=order:42`` for one channel."""
        principal = self._reader(request)
        if isinstance(principal, Response):
            return principal
        if not principal.monitor:
            # Who is online is personal data: operators only, --public-reads or not.
            return Response.error(403, "for operators: send a monitor token or the API key")
        channel = request.query.get("channel")
        if channel is not None and not CHANNEL_NAME.fullmatch(channel):
            return Response.error(400, f"?channel= is not a channel name: {CHANNEL_HINT}")
        return Response.json(200, self.roster.summary(channel))

    async def prometheus(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus text format."""
        refusal = self._operators_only(request)
        if refusal is not None:
            return refusal
        return Response(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")

    def _reader(self, request: Request) -> Principal | Response:
        """Who reads: the principal of the bearer, or the refusal to send."""
        token = request.bearer
        if token is None:
            if self.settings.public_reads:
                return ANONYMOUS
            return Response.error(401, _READ_CREDENTIALS)
        # Bytes: compare_digest refuses str that is not ASCII, and headers may hold anything.
        if self.settings.api_key and hmac.compare_digest(
            token.encode(), self.settings.api_key.encode()
        ):
            return _EVERYTHING
        try:
            return self.authenticator.verify(token)
        except Unauthorized as exc:
            return Response.error(401, str(exc))

    def _operators_only(self, request: Request) -> Response | None:
        """A refusal unless the caller may see everything (or ``--public-reads`` is on)."""
        principal = self._reader(request)
        if isinstance(principal, Response):
            return principal
        if principal.monitor or self.settings.public_reads:
            return None
        return Response.error(403, "for operators: send a monitor token or the API key")

    # Browsers on other origins

    async def preflight(self, _request: Request) -> Response:
        return Response(204, content_type="text/plain")

    def _with_cors(self, handler: Handler) -> Handler:
        sites = self.settings.sites

        async def handle(request: Request) -> Response:
            response = await handler(request)
            origin = request.headers.get("origin")
            if origin is None or not sites.origin_allowed(origin, request.headers.get("host")):
                return response
            cors = (
                ("access-control-allow-origin", origin),
                ("access-control-allow-methods", "GET, POST, OPTIONS"),
                (
                    "access-control-allow-headers",
                    "authorization, content-type, x-api-key, last-event-id",
                ),
                ("access-control-max-age", "600"),
                ("vary", "Origin"),
            )
            return response.with_headers(*cors)

        return handle


async def _serve(document: StaticFile, _request: Request) -> Response:
    return Response(200, document.body, document.content_type)
