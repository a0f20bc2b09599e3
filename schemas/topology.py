"""The RabbitMQ topology, as data: the one place that names exchanges and queues.

::

    producer ──► bridge.events (topic) ──► bridge.instance.<name> (one per bridge)
                                                   │ rejected, expired, too many deliveries
                                                   ▼
                                      bridge.dlx (fanout) ──► bridge.dead

Routing keys say who an event is for: ``event.<type>`` (``:`` written as
``.``) for everyone, ``role.<role>``, ``user.<id>``, ``channel.<channel>``
(``:`` written as ``.`` too: ``order:42`` is ``channel.order.42``), and
``dashboard``. Beside them, ``bridge.presence`` (fanout) carries each
instance's list of who is connected to every other instance. Both the
producer and the bridge declare from these specs, each with its own client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from schemas.audience import Channel, Everyone, Role, User
from schemas.envelope import DASHBOARD, Event

__all__ = [
    "AMQP_SCHEMES",
    "DEAD_LETTERS",
    "DEAD_LETTER_QUEUE",
    "EVENTS",
    "INSTANCE_BINDINGS",
    "PRESENCE",
    "REPLICAS",
    "TASK_NAME",
    "Binding",
    "Exchange",
    "Queue",
    "broker_urls",
    "display_url",
    "instance_queue",
    "is_amqp_url",
    "presence_queue",
    "routing_key",
]

#: The Celery task name of the messages that carry events: what the producer
#: publishes and the bridge reads (no Celery worker runs it).
TASK_NAME = "bridge.publish"


@dataclass(frozen=True)
class Exchange:
    """An exchange to declare."""

    name: str
    type: Literal["topic", "fanout"]
    durable: bool = True


@dataclass(frozen=True)
class Binding:
    """Messages published to ``exchange`` with a key matching ``routing_key`` reach the queue."""

    exchange: Exchange
    routing_key: str


@dataclass(frozen=True)
class Queue:
    """A queue to declare, with its ``x-`` arguments and bindings."""

    name: str
    bindings: tuple[Binding, ...]
    arguments: Mapping[str, str | int] = field(default_factory=dict)
    durable: bool = True
    #: Only its declaring connection may use it, and it goes with that connection.
    exclusive: bool = False


#: Every event is published here, by Celery or by the HTTP API.
EVENTS = Exchange("bridge.events", "topic")

#: Where the instance queues send what they cannot deliver.
DEAD_LETTERS = Exchange("bridge.dlx", "fanout")

#: Where each instance says who is connected to it, for every other instance.
PRESENCE = Exchange("bridge.presence", "fanout")

#: Nodes that hold a copy of each of the bridge's queues in a RabbitMQ cluster: it keeps
#: working while one of them is down (a quorum needs 2 of 3). RabbitMQ 3.x would
#: otherwise put a copy on every node, which costs each event one write per node.
REPLICAS = 3

#: Messages no bridge could use, for an operator to read and replay. A quorum
#: queue, so that it keeps taking them while a node of a cluster is down (a
#: classic queue lives on one node). Reading a message to list it and handing
#: it back counts as a delivery: the limit is set far out of reach, since
#: RabbitMQ 4 would otherwise drop a message listed 20 times.
DEAD_LETTER_QUEUE = Queue(
    "bridge.dead",
    bindings=(Binding(DEAD_LETTERS, ""),),
    arguments={
        "x-queue-type": "quorum",
        "x-delivery-limit": 1_000_000,
        "x-quorum-initial-group-size": REPLICAS,
    },
)

#: What an instance queue receives from :data:`EVENTS`: every audience. Each instance
#: takes every channel's events, subscribers or not, so that its history can replay
#: them to a client that subscribes later, on whichever instance it reconnects to.
INSTANCE_BINDINGS = tuple(
    Binding(EVENTS, key) for key in ("event.#", "role.#", "user.#", "channel.#", "dashboard")
)

_INSTANCE = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


def instance_queue(
    instance: str,
    *,
    expires: timedelta = timedelta(hours=1),
    max_length: int = 100_000,
    delivery_limit: int = 20,
    replicas: int = REPLICAS,
) -> Queue:
    """The queue of one bridge instance.

    A quorum queue, so it keeps events while the instance restarts and counts
    deliveries: a message that keeps failing is dead-lettered after
    ``delivery_limit`` tries instead of looping (RabbitMQ before 4.0 sets no
    limit of its own). Every return counts, including prefetched messages
    handed back when the instance restarts, so the limit is generous. The
    queue removes itself once no instance has used it for ``expires``, and
    beyond ``max_length`` waiting events it dead-letters the oldest. In a
    cluster, ``replicas`` nodes hold a copy (all of them in a smaller cluster);
    its leader starts on the node the instance is connected to.
    """
    if not _INSTANCE.fullmatch(instance):
        raise ValueError(
            f"instance name {instance!r} must be 1 to 200 letters, digits, '_', '.' or '-'"
        )
    return Queue(
        f"bridge.instance.{instance}",
        bindings=INSTANCE_BINDINGS,
        arguments={
            "x-queue-type": "quorum",
            "x-expires": int(expires.total_seconds() * 1000),
            "x-max-length": max_length,
            "x-overflow": "drop-head",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTERS.name,
            "x-quorum-initial-group-size": replicas,
        },
    )


def presence_queue(
    instance: str, connection: str, *, expires: timedelta = timedelta(seconds=15)
) -> Queue:
    """Where one instance hears the others' presence: ``bridge.presence.<instance>.
    <connection>``, one connection's own (exclusive: it goes with the connection, and a
    restarted instance never waits for its last one to go), holding no snapshot older
    than ``expires`` and at most 1,000, so a flood of them cannot grow it."""
    # 16 + 200 + 1 + a short id: within AMQP's 255 for a queue name.
    if not _INSTANCE.fullmatch(instance) or not _INSTANCE.fullmatch(connection):
        raise ValueError(f"{instance!r} and {connection!r} cannot name a queue")
    return Queue(
        f"bridge.presence.{instance}.{connection}",
        bindings=(Binding(PRESENCE, ""),),
        arguments={
            "x-message-ttl": int(expires.total_seconds() * 1000),
            "x-max-length": 1000,
            "x-overflow": "drop-head",
        },
        durable=False,
        exclusive=True,
    )


def routing_key(event: Event) -> str:
    """The key ``event`` is published with: it says who the event is for."""
    match event.audience:
        case Role(role=role):
            return f"role.{role}"
        case User(user=user):
            return f"user.{user}"
        case Channel(channel=channel):
            return "channel." + channel.replace(":", ".")
        case Everyone() if event.type == DASHBOARD:
            return "dashboard"
        case _:
            return "event." + event.type.replace(":", ".")


#: The URL schemes of RabbitMQ that the bridge, the producer and the operator commands take.
AMQP_SCHEMES = frozenset({"amqp", "amqps"})


def broker_urls(spec: str) -> tuple[str, ...]:
    """The URLs a broker setting names, in order: one, or the nodes of a cluster
    separated by ``;``, the failover form of kombu and Celery
    (``amqp://a:5672/;amqp://b:5672/``)."""
    return tuple(url.strip() for url in spec.split(";") if url.strip())


def is_amqp_url(spec: str) -> bool:
    """Whether ``spec`` names RabbitMQ: one or more ``amqp://`` or ``amqps://`` URLs,
    separated by ``;`` (several run together some other way are not a URL)."""
    urls = broker_urls(spec)
    return bool(urls) and all(
        urlsplit(url).scheme in AMQP_SCHEMES and url.count("://") == 1 for url in urls
    )


def display_url(spec: str) -> str:
    """A broker's URL, or several, with every password hidden, fit for logs and errors.

    Any ``user:password@`` is hidden, not only where a well-formed URL keeps
    it: a list run together with ``,`` still shows no password.
    """
    return ";".join(_PASSWORD.sub(r"\1:***@", url) for url in broker_urls(spec)) or spec


# The userinfo of each "scheme://user:password@" in a text, up to the first "@".
_PASSWORD = re.compile(r"(://[^:/@;,\s]*):[^@;\s]*@")
