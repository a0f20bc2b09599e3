"""The bridge's settings: built once by the command line and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from bridge.auth import MAX_TOKEN_LIFETIME
from bridge.exceptions import ConfigError
from bridge.sites import Sites
from schemas import Catalog
from schemas.protocol import MIN_SECRET_LENGTH
from schemas.topology import display_url, instance_queue, is_amqp_url

__all__ = ["MIN_API_KEY_LENGTH", "SSE_PATH", "WS_PATH", "Limits", "Settings"]

#: Where clients open their WebSocket (the one path the handshake accepts).
WS_PATH = "/ws"
#: Where browsers open a stream of Server-Sent Events, the fallback for WebSocket.
SSE_PATH = "/sse"

#: An API key is compared whole, never brute-forced offline: 96 random bits are plenty.
MIN_API_KEY_LENGTH = 16


@dataclass(frozen=True)
class Limits:
    """Every limit of a bridge instance, each with a default."""

    #: Largest message a client may send; larger ones close the connection with 1009.
    max_message_size: int = 64 * 1024
    #: Fragments one client message may come in; more close the connection with 1009.
    max_fragments: int = 256
    #: Largest event, in bytes of JSON: a larger HTTP request body gets 413, a larger
    #: message from RabbitMQ is dead-lettered. Events are notifications, not files:
    #: each one is held for every slow client that has not read it yet.
    max_event_size: int = 64 * 1024
    #: Open connections (HTTP and WebSocket) from one address; more get 429 and
    #: are closed at once. 0: no bound (behind a reverse proxy, which bounds them).
    max_connections_per_ip: int = 500
    #: Open connections in all; more get 503 and are closed at once. 0: no bound.
    max_connections: int = 50_000
    #: Seconds a client has to send a whole request, head and body, from its
    #: first byte (or from connecting); then 408. Slow senders hold no socket longer.
    http_request_timeout: float = 10.0
    #: Seconds a keep-alive HTTP connection may wait for its next request.
    http_idle_timeout: float = 60.0
    #: Requests per second one address may make to ``/api/dashboard/*``
    #: (callers with the API key have their own budget); over it, 429. 0: no limit.
    api_rate_per_ip: float = 100.0
    #: Requests one address may make at once before ``api_rate_per_ip`` applies:
    #: a legacy caller's bulk save of this many objects passes whole.
    api_burst_per_ip: int = 1000
    #: Requests per second made with the API key, from every address together.
    api_rate_per_key: float = 1000.0
    #: Requests made with the API key at once before ``api_rate_per_key`` applies.
    api_burst_per_key: int = 5000
    #: Bytes waiting to be written to one client, beyond what its socket holds,
    #: before it counts as too slow and is closed with 1013.
    max_send_buffer: int = 1024 * 1024
    #: The kernel's send buffer of each WebSocket (SO_SNDBUF; Linux doubles it).
    #: Left to autotune, a client that stops reading parks up to 4 MiB in it
    #: before ``max_send_buffer`` even starts counting; 256 KiB still moves
    #: 2.5 MB/s over a 100 ms round trip, far more than events need.
    socket_send_buffer: int = 128 * 1024
    #: Bytes waiting for all clients together; past it, every client more than
    #: 64 KiB behind is closed with 1013 as it is written to. It bounds the memory
    #: that frozen clients can hold, however many they are.
    max_queued_bytes: int = 256 * 1024 * 1024
    #: Seconds a ``?batch=1`` connection's events may wait to share a frame;
    #: an event after a quiet spell of this long leaves at once.
    batch_window: float = 0.1
    #: Seconds between keepalive pings; a client that has not answered by the
    #: next one is dropped.
    ping_interval: float = 20.0
    #: Seconds a client without a token in its URL has to send ``{"op": "auth"}``.
    auth_timeout: float = 5.0
    #: Seconds a new connection's live events wait for a ``resume``.
    resume_window: float = 1.0
    #: Seconds a closing client has to answer the close frame.
    close_timeout: float = 2.0
    #: Seconds before its token expires that a connection is sent ``bridge:refresh``
    #: (half the token's lifetime, if shorter).
    refresh_notice: float = 30.0
    #: Unacknowledged messages RabbitMQ may push to one instance.
    prefetch: int = 256
    #: Event ids remembered to drop duplicates, however old.
    dedup_size: int = 10_000
    #: Seconds each stream's history keeps an event for clients that resume.
    history_ttl: float = 3600.0
    #: Positions of recent events kept (id and number, about 250 bytes each): how
    #: far back, in events of every stream, a client may resume.
    history_ids: int = 100_000
    #: Bytes of event JSON the history keeps, every stream together; past it, the
    #: oldest events go first.
    history_bytes: int = 64 * 1024 * 1024
    #: Channels one connection may subscribe to; more are refused.
    max_channels: int = 100
    #: Seconds between presence snapshots sent to the other instances; an instance
    #: silent for three of them leaves the presence (a killed one).
    presence_interval: float = 5.0
    #: Seconds at most between a change (a user's last tab closed) and the snapshot
    #: that tells the other instances.
    presence_min_interval: float = 1.0
    #: User ids listed per role, channel or ``bridge:join`` burst; counts are whole.
    presence_max_users: int = 1000
    #: Event type names outside the catalog counted apart in stats and metrics;
    #: past this many, callers' new names are counted together as "(other)".
    max_event_types: int = 1000


@dataclass(frozen=True)
class Settings:
    """One bridge instance's configuration; see ``event-bridge serve --help``."""

    host: str
    port: int
    broker_url: str
    jwt_secret: str
    jwt_secret_generated: bool
    api_key: str | None
    allow_anonymous: bool
    history_size: int
    #: Browser origins allowed besides the page's own (``None``: none).
    allowed_origins: frozenset[str] | None
    instance: str
    compression: bool
    state_dir: Path
    limits: Limits = Limits()
    #: The project's event types; empty: every event is untyped, delivered as sent.
    catalog: Catalog = field(default_factory=Catalog)
    #: The module path the catalog was loaded from, for the startup line.
    catalog_spec: str | None = None
    #: Refuse events whose type is not in the catalog or whose data does not fit it.
    strict_events: bool = False
    #: Host names served besides IP addresses, localhost and the allowed origins' hosts.
    allowed_hosts: frozenset[str] = frozenset()
    #: History (events for everyone), stats and metrics without credentials, as the
    #: seed served them.
    public_reads: bool = False
    #: Seconds ahead a token's ``exp`` may be; tokens that live longer are refused.
    max_token_lifetime: float = MAX_TOKEN_LIFETIME.total_seconds()
    #: Listen with SO_REUSEPORT, beside the other workers of ``serve --workers``.
    reuse_port: bool = False
    #: The ``iss`` tokens must carry, if any.
    jwt_issuer: str | None = None
    #: The ``aud`` tokens must carry, if any.
    jwt_audience: str | None = None

    def __post_init__(self) -> None:
        if not (self.broker_url == "memory://" or is_amqp_url(self.broker_url)):
            raise ConfigError(
                "--broker must be memory:// or amqp://user:password@host:5672/vhost (a "
                f"cluster's nodes separated by ';'), not {display_url(self.broker_url)!r}"
            )
        try:
            instance_queue(self.instance)  # the instance names its queue: same rules
        except ValueError as exc:
            raise ConfigError(
                f"--instance {self.instance!r}: use 1 to 200 letters, digits, '_', '.' or '-'"
            ) from exc
        if len(self.jwt_secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"--jwt-secret must be at least {MIN_SECRET_LENGTH} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.api_key is not None and len(self.api_key) < MIN_API_KEY_LENGTH:
            raise ConfigError(
                f"the API key (--api-key, --api-key-file or BRIDGE_API_KEY) must be at least "
                f"{MIN_API_KEY_LENGTH} characters, or left out "
                "(anyone may then publish); generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
        if self.strict_events and not self.catalog:
            raise ConfigError(
                "--strict-events refuses every type outside the catalog: give --catalog "
                "with your event types (or leave out --strict-events)"
            )
        if self.history_size < 1:
            raise ConfigError("--history-size must be at least 1")

    @cached_property
    def sites(self) -> Sites:
        """The hosts and origins this instance accepts."""
        return Sites(self.allowed_hosts, self.allowed_origins or frozenset())

    @property
    def history_file(self) -> Path:
        """Where this instance keeps its history across restarts."""
        return self.state_dir / f"{self.instance}.history.jsonl"
