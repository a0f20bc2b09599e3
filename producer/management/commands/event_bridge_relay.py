"""``manage.py event_bridge_relay``: send the outbox's events to RabbitMQ."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from messaging.publisher import Publisher
from producer.conf import producer_settings
from producer.models import OUTBOX_TABLE
from producer.relay import SWEEP_AFTER, Relay, backlog, events, log, waiter
from schemas.topology import display_url


class Command(BaseCommand):
    help = (
        "Publish the events stored in the outbox to RabbitMQ (EVENT_BRIDGE['BROKER_URL']), "
        "oldest first, with publisher confirms, deleting each once confirmed. Runs until "
        "SIGTERM or Ctrl-C, waking when a transaction commits on PostgreSQL and every "
        "RELAY_POLL_INTERVAL seconds elsewhere; --once empties the outbox and exits. "
        "With EVENT_BRIDGE['SEND_ON_COMMIT'] (the default) each web process sends its own "
        "events and the relay sweeps what they could not (RabbitMQ was down, the process "
        "died): keep one running in production. With SEND_ON_COMMIT False it sends "
        "everything. On PostgreSQL several may run, on SQLite run one."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        config = producer_settings()
        parser.add_argument(
            "--once",
            action="store_true",
            help="send what the outbox holds, then exit (1 if RabbitMQ refused some)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=config.relay_batch_size,
            help="rows claimed, published and deleted per transaction "
            "(default: EVENT_BRIDGE['RELAY_BATCH_SIZE'], %(default)s)",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=config.relay_poll_interval,
            help="seconds between looks at the outbox when the database cannot notify "
            "(default: EVENT_BRIDGE['RELAY_POLL_INTERVAL'], %(default)s)",
        )
        parser.add_argument(
            "--sweep-after",
            type=float,
            help="leave rows younger than this many seconds to the web process that wrote "
            f"them (default: {SWEEP_AFTER} with EVENT_BRIDGE['SEND_ON_COMMIT'], else 0; "
            "with --once, 0)",
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="the database alias (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using: str = options["database"]
        if options["batch_size"] < 1 or options["poll_interval"] <= 0:
            raise CommandError("--batch-size and --poll-interval must be positive")
        config = producer_settings()
        sweep_after: float | None = options["sweep_after"]
        if sweep_after is None:
            sweep_after = SWEEP_AFTER if config.send_on_commit and not options["once"] else 0.0
        if sweep_after < 0:
            raise CommandError("--sweep-after cannot be negative")
        if not config.broker_url:
            raise CommandError("no broker: set EVENT_BRIDGE['BROKER_URL'] or CELERY_BROKER_URL")
        if OUTBOX_TABLE not in connections[using].introspection.table_names():
            raise CommandError(f"no {OUTBOX_TABLE} table in {using!r}: run manage.py migrate")
        _log_to_stderr()
        broker = display_url(config.broker_url)
        publisher = Publisher(
            config.broker_url,
            timeout=config.publish_timeout,
            cooldown=0,
            name="event-bridge relay",
        )
        wait = waiter(using, options["poll_interval"])
        relay = Relay(
            publisher,
            broker=broker,
            wait=wait,
            using=using,
            batch_size=options["batch_size"],
            sweep_after=sweep_after,
        )
        try:
            if options["once"]:
                self._once(relay)
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            log.info(
                "relay: outbox of database %r -> RabbitMQ at %s; %s; waking %s; %s",
                using,
                broker,
                backlog(using),
                wait,
                f"taking rows older than {relay.sweep_after} s (web processes send the newer ones)"
                if relay.sweep_after
                else "taking every row",
            )
            relay.run(stop)
            log.info("relay: stopped after sending %s; %s", events(relay.sent), backlog(using))
        finally:
            wait.close()
            publisher.close()

    def _once(self, relay: Relay) -> None:
        batch = relay.drain()
        self.stdout.write(f"sent {events(relay.sent)}; {backlog(relay.using)}")
        if batch.error is not None:
            raise CommandError(f"RabbitMQ at {relay.broker} refused: {batch.error}")


def _log_to_stderr() -> None:
    """INFO and up on stderr, unless the project configured the producer's logging."""
    if log.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
