"""Prometheus metrics of one bridge instance, in a registry of its own.

Counters are bumped on the hot path once per event (never once per client);
gauges are read from the live state when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

#: Delivery latency buckets, in seconds: sub-millisecond to a second.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """What an operator alerts on; see docs/operations.md.

    Type labels are the names :class:`~bridge.counts.TypeCounts` gives, so
    callers inventing names cannot grow them without bound.
    """

    def __init__(
        self,
        *,
        connections_by_role: Callable[[], Mapping[str, int]],
        connections: Callable[[], int],
        broker_connected: Callable[[], bool],
        dead_lettered: Callable[[], int],
        queued: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter(
            "bridge_events_received", "Events accepted, by type.", ["type"], registry=self.registry
        )
        self.events_out = Counter(
            "bridge_events_delivered",
            "Events queued for a connection, by type (one per recipient).",
            ["type"],
            registry=self.registry,
        )
        self.untyped = Counter(
            "bridge_events_untyped",
            "Events delivered as sent, by type and why: unknown (not in the catalog) or "
            "misfit (in the catalog, but the data does not fit).",
            ["type", "reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "bridge_events_duplicate", "Events dropped as already seen.", registry=self.registry
        )
        self.published = Counter(
            "bridge_http_published",
            "Events taken by the HTTP API and confirmed by the broker, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "bridge_http_rate_limited",
            "HTTP API requests refused with 429, by limit (per-ip or per-key).",
            ["limit"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "bridge_connections_refused",
            "Connections closed on arrival, by bound: per-ip (max_connections_per_ip, 429) "
            "or total (max_connections, 503).",
            ["bound"],
            registry=self.registry,
        )
        self.http_timeouts = Counter(
            "bridge_http_timeouts",
            "HTTP connections closed by a timeout: request (http_request_timeout, 408) "
            "or idle (http_idle_timeout).",
            ["timeout"],
            registry=self.registry,
        )
        self.slow_clients = Counter(
            "bridge_slow_clients_dropped",
            "Connections closed for reading too slowly (1013).",
            registry=self.registry,
        )
        self.subscriptions_refused = Counter(
            "bridge_subscriptions_refused",
            "Channel subscriptions refused: not allowed, a bad token, or too many channels.",
            registry=self.registry,
        )
        self.latency = Histogram(
            "bridge_delivery_latency_seconds",
            "From receiving an event to writing it to the sockets of its audience.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(
            _LiveState(connections_by_role, connections, broker_connected, dead_lettered, queued)
        )

    def render(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)


class _LiveState(Collector):
    def __init__(
        self,
        by_role: Callable[[], Mapping[str, int]],
        total: Callable[[], int],
        broker_connected: Callable[[], bool],
        dead_lettered: Callable[[], int],
        queued: Callable[[], int],
    ) -> None:
        self._by_role = by_role
        self._queued = queued
        self._total = total
        self._broker_connected = broker_connected
        self._dead_lettered = dead_lettered

    def collect(self) -> Iterator[Metric]:
        total = GaugeMetricFamily("bridge_connections", "Open WebSocket connections.")
        total.add_metric([], self._total())
        yield total
        by_role = GaugeMetricFamily(
            "bridge_connections_by_role", "Connections whose token has the role.", labels=["role"]
        )
        for role, count in self._by_role().items():
            by_role.add_metric([role], count)
        yield by_role
        broker = GaugeMetricFamily(
            "bridge_broker_connected", "1 while events flow from the broker, else 0."
        )
        broker.add_metric([], 1 if self._broker_connected() else 0)
        yield broker
        dead = CounterMetricFamily(
            "bridge_dead_lettered", "Messages sent to bridge.dead because they are not events."
        )
        dead.add_metric([], self._dead_lettered())
        yield dead
        queued = GaugeMetricFamily(
            "bridge_queued_bytes",
            "Bytes waiting to be written to clients, all together (bounded by max_queued_bytes).",
        )
        queued.add_metric([], self._queued())
        yield queued
