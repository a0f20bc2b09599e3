"""Publishing events as Celery task messages: the producer's core, which never imports Django.

Each event leaves as a Celery task message (protocol 2) named ``bridge.publish``,
its first argument the event, sent to the ``bridge.events`` exchange with the
routing key of its audience. The bridge consumes it: no Celery worker runs on
the way. Publisher confirms are on, and every send is bounded in time.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from messaging.entities import exchange
from messaging.forks import reset_in_child
from schemas import Event
from schemas.topology import EVENTS, TASK_NAME, routing_key

__all__ = ["PublishError", "Publisher"]

log = logging.getLogger("producer")


#: At most two short retries: a request is never held long for an event.
_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.3}


class PublishError(Exception):
    """RabbitMQ did not take the event; the message says why."""


class Publisher:
    """Sends events to RabbitMQ through a Celery app of its own.

    Args:
        broker_url: the RabbitMQ URL, e.g. ``amqp://user:password@host:5672/vhost``.
        timeout: the most one :meth:`publish` may take, connecting, retrying
            and waiting for the confirm included, in seconds.
        cooldown: after a failure, seconds during which sends fail at once.
        name: what RabbitMQ's management UI shows for its connections, so an
            operator sees who publishes (the bridge names its own alike).
    """

    def __init__(
        self,
        broker_url: str,
        *,
        timeout: float = 2.0,
        cooldown: float = 5.0,
        name: str = "event-bridge producer",
    ) -> None:
        self.timeout = timeout
        self.cooldown = cooldown
        self._broker_url = broker_url
        self._name = name
        self._down_until = 0.0
        self._failed_at = 0.0
        self._app = self._celery()
        # A forked child (a gunicorn worker) must not publish on its parent's sockets.
        reset_in_child(self._forked)
        # Declared once per connection by kombu, so a fresh RabbitMQ is ready too.
        self._exchange = exchange(EVENTS)

    def _celery(self) -> Celery:
        app = Celery("event_bridge.producer", broker=self._broker_url, set_as_current=False)
        app.conf.update(
            broker_transport_options={
                "confirm_publish": True,
                "client_properties": {
                    "connection_name": f"{self._name} {socket.gethostname()} pid {os.getpid()}"
                },
            },
            broker_connection_timeout=self.timeout / 2,
            broker_connection_retry_on_startup=False,
            task_serializer="json",
            accept_content=["json"],
        )
        return app

    def _forked(self) -> None:
        # The parent's connections are left alone (closing them would close its sockets).
        self._app = self._celery()

    def publish(self, event: Event) -> None:
        """Send ``event`` and return once RabbitMQ confirmed it.

        Raises :class:`PublishError` if it could not be done within the timeout.
        For ``cooldown`` seconds after a failure it raises at once without
        trying, so a request that sends several events waits one timeout at
        most, not one per event.
        """
        started = time.monotonic()
        if started < self._down_until:
            raise PublishError(
                f"RabbitMQ did not take an event {started - self._failed_at:.1f} s ago; "
                f"event {event.id} not sent (no new attempt for "
                f"{self._down_until - started:.1f} s more)"
            )
        try:
            self._send(event)
        except (OSError, AMQPError, KombuError, OperationalError, TimeoutError) as exc:
            self._failed_at = time.monotonic()
            elapsed = self._failed_at - started
            self._down_until = self._failed_at + self.cooldown
            raise PublishError(
                f"RabbitMQ did not take event {event.id} in {elapsed:.2f} s: {exc}"
            ) from exc

    def _send(self, event: Event) -> None:
        amqp = self._app.amqp
        # Built and published directly: send_task would also route and repr
        # the payload, which costs more than the publish itself.
        message = amqp.as_task_v2(
            event.id,
            TASK_NAME,
            args=(event.model_dump(mode="json"),),
            argsrepr=f"[{event.type} {event.id}]",
            kwargsrepr="{}",
        )
        with self._app.producer_pool.acquire(block=True, timeout=self.timeout / 2) as producer:
            amqp.send_task_message(
                producer,
                TASK_NAME,
                message,
                exchange=EVENTS.name,
                routing_key=routing_key(event),
                declare=[self._exchange],
                serializer="json",
                retry=True,
                retry_policy=_RETRY,
                timeout=self.timeout / 2,
                confirm_timeout=self.timeout / 2,
            )

    def close(self) -> None:
        """Release the connections to RabbitMQ."""
        self._app.close()
