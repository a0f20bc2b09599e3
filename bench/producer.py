"""Producer benchmark: how long a Django save spends sending one event.

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest), a
working ``rabbitmqctl`` and, for the seed's row, Node >= 20 and npm::

    uv run --frozen --group bench python bench/producer.py
    uv run --frozen --group bench python bench/producer.py --saves 200 --clients 100

In one run, each row timed call by call (p50, p99, max over ``--saves`` calls):

- ``save alone``: ``Categoria.objects.create()`` in ``transaction.atomic()``, a
  model without ``model_events``: what the save costs without any event.
- ``ours``: ``Reserva.objects.create()`` in ``transaction.atomic()`` in the
  example project, with the default settings: ``model_events`` writes
  ``reserva:creada`` to the outbox table in the same transaction, and on commit
  the process's sender thread publishes it. The whole block is timed: what the
  request spends. A bridge (``event-bridge serve``, core 0) and one WebSocket
  client run, with no relay: the note counts what reached the client.
- ``sent on commit``: time from each save's commit to the client's read of the
  event, ``--latency-saves`` saves at ``--latency-rate`` a second.
- ``relay only``: ``ours`` as it was before the sender (``"SEND_ON_COMMIT":
  False``): the row waits for the relay.
- ``ours direct``: the same with ``"DELIVERY": "direct"``: the event is
  published on commit, with publisher confirms, into the run's vhost, where the
  bridge's quorum queue (``bridge.instance.bench``) takes it.
- ``relay``: the outbox relay (``event_bridge_relay``'s loop, in a thread,
  polling every ``RELAY_POLL_INTERVAL`` as on SQLite): time from each save's
  commit to RabbitMQ's confirm, ``--latency-saves`` saves at ``--latency-rate``
  a second; its note gives the throughput of draining the ``relay only`` row's
  events.
- ``seed``: ``requests.post(".../api/dashboard/emit-event", json=..., timeout=5)``
  to the NestJS gateway (``bench/baselines/nestjs``, pinned to core 0) with
  ``--clients`` socket.io clients connected (a child process on core 1); it
  answers 202 after writing the event to every client.
- ``kombu confirms``: a bare kombu ``Producer.publish`` of the same event with
  ``confirm_publish``; ``celery send_task``: Celery's default, no confirms.
- When the other side is down: ``ours`` with the sender's RabbitMQ behind a TCP
  proxy that refuses, then forwards again (the events wait in the outbox and
  the process sends them all when it is back, with no relay); ``relay only``
  the same with the relay behind the proxy; ``relay only`` with no bridge
  consuming (they wait in its queue);
  ``ours direct`` with BROKER_URL at a closed port and ``seed`` with the gateway
  stopped (both lose the event).

Django runs in this process with ``example/mi_proyecto/settings.py``, SQLite in
a temporary directory (migrated first). The vhost is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deliverybench.constants import VHOST_PREFIX
from deliverybench.machine import rabbitmqctl, vhost
from proxy import Proxy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "example"
BASELINES = HERE / "baselines"
NESTJS = BASELINES / "nestjs"
HOST = "127.0.0.1"
SERVER_CORE = 0
CLIENT_CORE = 1
START_TIMEOUT = 30
STOP_TIMEOUT = 10
BUILD_TIMEOUT = 600
POST_TIMEOUT = 5
WARMUP = 20


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a Django save's event send: ours against the seed's HTTP POST "
        "to its NestJS gateway, a bare kombu publish with confirms and Celery's send_task.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--saves", type=int, default=500, help="timed calls per row")
    parser.add_argument("--down-saves", type=int, default=100, help="timed calls per 'down' row")
    parser.add_argument("--clients", type=int, default=1000, help="socket.io clients of NestJS")
    parser.add_argument(
        "--latency-saves", type=int, default=200, help="saves timed commit -> confirmed publish"
    )
    parser.add_argument(
        "--latency-rate", type=float, default=50.0, help="saves per second for the relay's latency"
    )
    parser.add_argument(
        "--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="broker, without vhost"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=0,
        help="Django's CONN_MAX_AGE for the database (0, Django's default, connects anew "
        "for each request and each batch the sender thread sends)",
    )
    parser.add_argument(
        "--database-url",
        help="an empty database to use instead of SQLite on tmpfs, e.g. "
        "postgresql://postgres@127.0.0.1:5432/bench (migrated, then left as it is)",
    )
    # Internal: the socket.io clients' child process.
    parser.add_argument("--sio-clients", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.saves, args.down_saves, args.clients, args.latency_saves) < 1:
        parser.error("--saves, --down-saves, --clients and --latency-saves must be positive")
    if args.latency_rate <= 0:
        parser.error("--latency-rate must be positive")
    return args


# Timing


@dataclass
class Row:
    path: str
    times: list[float]  # seconds
    note: str = ""

    def pct(self, q: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.times) * 1000


def timed(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


# The machine


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Django


DB_DIR = ["?"]


def setup_django(broker_url: str, tmp: Path, database_url: str | None, conn_max_age: int) -> None:
    from schemas.topology import display_url  # noqa: PLC0415 - no password in the output

    DB_DIR[0] = f"SQLite in {tmp}" if database_url is None else display_url(database_url)
    DB_DIR[0] += f", CONN_MAX_AGE {conn_max_age}"
    sys.path.insert(0, str(EXAMPLE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "mi_proyecto.settings"
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{tmp / 'db.sqlite3'}"
    os.environ["BRIDGE_BROKER_URL"] = broker_url
    os.environ["DJANGO_DEBUG"] = "0"  # DEBUG keeps every query in memory
    import django  # noqa: PLC0415 - configured just above
    from django.core.management import call_command  # noqa: PLC0415

    django.setup()
    from django.conf import settings  # noqa: PLC0415

    settings.DATABASES["default"]["CONN_MAX_AGE"] = conn_max_age  # before any connection
    call_command("migrate", verbosity=0)


class Failures(logging.Handler):
    """Counts the producer's warnings (one per event not sent), and keeps the last."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = record.getMessage()


def queue_depth(broker_url: str, name: str) -> int:
    from kombu import Connection  # noqa: PLC0415

    with Connection(broker_url) as conn:
        return int(conn.default_channel.queue_declare(name, passive=True).message_count)


class Confirms:
    """A publisher that notes when RabbitMQ confirmed each event (for the relay's latency)."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher
        self.at: dict[str, float] = {}

    def publish(self, event: Any) -> None:
        self._publisher.publish(event)
        self.at[event.id] = time.perf_counter()

    def close(self) -> None:
        self._publisher.close()


class RelayThread:
    """``manage.py event_bridge_relay``'s loop in a thread: polling SQLite, LISTENing on PG."""

    def __init__(self, broker_url: str) -> None:
        from messaging.publisher import Publisher  # noqa: PLC0415
        from producer.conf import producer_settings  # noqa: PLC0415
        from producer.relay import Relay, waiter  # noqa: PLC0415
        from schemas.topology import display_url  # noqa: PLC0415

        config = producer_settings()
        self.wait = waiter("default", config.relay_poll_interval)
        self.confirms = Confirms(Publisher(broker_url, timeout=config.publish_timeout, cooldown=0))
        self.relay = Relay(
            self.confirms,  # type: ignore[arg-type]
            broker=display_url(broker_url),
            wait=self.wait,
            batch_size=config.relay_batch_size,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.relay.run, args=(self._stop,), daemon=True)

    def __enter__(self) -> RelayThread:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        self.confirms.close()


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held (polled every 10 ms); raises after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not done within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


#: A browser-like client in a process of its own: prints "ready" once welcomed, then
#: "<CLOCK_MONOTONIC seconds> <event id>" for each event (one clock for both processes).
CLIENT = """
import json, sys, time
from websockets.sync.client import connect
with connect(sys.argv[1]) as ws:
    json.loads(ws.recv())
    print("ready", flush=True)
    for message in ws:
        print(time.monotonic(), json.loads(message)["id"], flush=True)
"""


class BridgeClient:
    """``event-bridge serve`` on the run's vhost (core 0), and one client reading every event."""

    def __init__(self, broker_url: str, state_dir: Path) -> None:
        self._broker_url = broker_url
        self._state_dir = state_dir
        self.arrived: dict[str, float] = {}
        self._procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> BridgeClient:
        env = {**os.environ, "PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}"}
        command = [
            str(Path(sys.executable).parent / "event-bridge"),
            "serve",
            *("--port", "0", "--broker", self._broker_url, "--instance", "bench-client"),
            *("--allow-anonymous", "--state-dir", str(self._state_dir)),
            *("--catalog", "api_rest.events:catalog"),
        ]
        bridge = subprocess.Popen(  # noqa: S603 - our own command line
            command,
            env={**env, "BRIDGE_JWT_SECRET": "bench-" * 8},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),  # noqa: PLW1509
        )
        self._procs.append(bridge)
        assert bridge.stdout is not None
        # Its log (stderr, merged here) may come first: the open-file limit's warning.
        found = None
        for _ in range(5):
            line = bridge.stdout.readline()
            if line.startswith("event-bridge: instance"):
                found = re.search(r"ws://[\w.:]+?:(\d+)/ws", line)
                break
        if found is None:
            self.__exit__()
            raise RuntimeError("the bridge did not start")
        threading.Thread(target=bridge.stdout.read, daemon=True).start()  # never blocks it
        url = f"ws://{HOST}:{found[1]}"
        wait_until(lambda: _status(f"http://{HOST}:{found[1]}/api/health") == 200, START_TIMEOUT)
        client = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, "-c", CLIENT, f"{url}/ws"], stdout=subprocess.PIPE, text=True
        )
        self._procs.append(client)
        assert client.stdout is not None
        if client.stdout.readline().strip() != "ready":
            self.__exit__()
            raise RuntimeError("the client was not welcomed")
        threading.Thread(target=self._read, args=(client.stdout,), daemon=True).start()
        return self

    def _read(self, lines: Any) -> None:
        for line in lines:
            at, event_id = line.split()
            self.arrived[event_id] = float(at)

    def __exit__(self, *_: object) -> None:
        for proc in reversed(self._procs):
            stop(proc)  # type: ignore[arg-type]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own bridge
            return int(answer.status)
    except OSError:
        return 0


def sent_on_commit_rows(
    args: argparse.Namespace,
    save: Callable[[], None],
    broker_url: str,
    proxy_class: type[Proxy],
    tmp: Path,
) -> list[Row]:
    """The default: each process sends its committed rows from a thread; no relay runs."""
    from django.conf import settings  # noqa: PLC0415
    from django.db.models.signals import post_save  # noqa: PLC0415

    from producer.models import OutboxEvent  # noqa: PLC0415
    from producer.sender import sender  # noqa: PLC0415

    written: list[str] = []

    def note_id(instance: Any, **_: Any) -> None:
        written.append(instance.event_id)

    rows = []
    default = {**settings.EVENT_BRIDGE, "DELIVERY": "outbox", "SEND_ON_COMMIT": True}
    settings.EVENT_BRIDGE = default
    post_save.connect(note_id, sender=OutboxEvent, dispatch_uid="bench-sent")
    with BridgeClient(broker_url, tmp / "bridge") as bridge:
        progress(f"ours (default, sent on commit): {args.saves} Reserva saves, no relay")
        timed(save, WARMUP)
        times = timed(save, args.saves)
        wait_until(lambda: all(i in bridge.arrived for i in written), 60)
        left = OutboxEvent.objects.count()
        rows.append(
            Row(
                "ours: Reserva save + model_events (default: outbox, sent on commit)",
                times,
                f"{len(written)}/{len(written)} events reached a browser client with no "
                f"relay running; {left} left in the outbox",
            )
        )
        progress(f"sent on commit: {args.latency_saves} saves at {args.latency_rate}/s")
        committed: dict[str, float] = {}
        for _ in range(args.latency_saves):
            save()
            committed[written[-1]] = time.monotonic()
            time.sleep(1 / args.latency_rate)
        wait_until(lambda: all(i in bridge.arrived for i in committed), 30)
        rows.append(
            Row(
                "sent on commit: commit -> browser client (bridge on core 0, no relay)",
                [bridge.arrived[i] - t for i, t in committed.items()],
                f"{args.latency_saves} saves at {args.latency_rate:g}/s, through RabbitMQ "
                "and the bridge to a WebSocket client",
            )
        )
        progress(f"ours, RabbitMQ down: {args.down_saves} saves, the sender's proxy refusing")
        proxy = proxy_class(broker_url)
        proxy.down()
        settings.EVENT_BRIDGE = {**default, "BROKER_URL": proxy.url}
        try:
            start = len(written)
            times = timed(save, args.down_saves)
            sender.flush(STOP_TIMEOUT)
            waiting = OutboxEvent.objects.count()
            proxy.up()
            back = time.monotonic()
            wait_until(lambda: all(i in bridge.arrived for i in written[start:]), 120)
            recovered = time.monotonic() - back
        finally:
            proxy.close()
            settings.EVENT_BRIDGE = default
        got = sum(i in bridge.arrived for i in written[start:])
        rows.append(
            Row(
                "ours, RabbitMQ down (default; the process's sender behind a refusing proxy)",
                times,
                f"{args.down_saves - got}/{args.down_saves} events lost: {waiting} waited in "
                f"the outbox, all reached the client {recovered:.1f} s after RabbitMQ was "
                f"back, with no relay (sweep backoff 0.5 s doubling to 30 s)",
            )
        )
    post_save.disconnect(note_id, sender=OutboxEvent, dispatch_uid="bench-sent")
    return rows


def django_rows(  # noqa: PLR0915 - one sequence of measurements sharing one database
    args: argparse.Namespace, broker_url: str, down_url: str, tmp: Path
) -> list[Row]:
    from django.conf import settings  # noqa: PLC0415
    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import connection, transaction  # noqa: PLC0415
    from django.db.models.signals import post_save  # noqa: PLC0415

    from api_rest import signals  # noqa: PLC0415 - after django.setup()
    from api_rest.models import Categoria, Cliente, Reserva  # noqa: PLC0415
    from messaging.entities import declare  # noqa: PLC0415
    from messaging.publisher import Publisher  # noqa: PLC0415
    from producer.models import OutboxEvent  # noqa: PLC0415
    from producer.notifier import publisher  # noqa: PLC0415
    from producer.relay import Poller, Relay  # noqa: PLC0415
    from schemas.topology import instance_queue  # noqa: PLC0415

    failures = Failures()
    producer_log = logging.getLogger("producer")
    producer_log.addHandler(failures)
    producer_log.propagate = False
    relay_log = Failures()  # the relay's warnings are not events lost
    logging.getLogger("producer.relay").addHandler(relay_log)
    logging.getLogger("producer.relay").propagate = False

    from kombu import Connection  # noqa: PLC0415

    queue = instance_queue("bench")
    with Connection(broker_url) as conn:
        declare(conn, queue)

    def depth() -> int:
        return queue_depth(broker_url, queue.name)

    cliente = Cliente.objects.create(user=User.objects.create(username="bench"))
    counter = iter(range(10**9))
    # Before issue 15's default: every row waits for the relay.
    outbox = {**settings.EVENT_BRIDGE, "DELIVERY": "outbox", "SEND_ON_COMMIT": False}
    direct = {**settings.EVENT_BRIDGE, "DELIVERY": "direct"}

    def save_alone() -> None:
        with transaction.atomic():
            Categoria.objects.create(nombre=f"c{next(counter)}")

    def save_reserva() -> None:
        with transaction.atomic():
            Reserva.objects.create(
                cliente=cliente, fecha="2025-01-01", hora="10:00", total_estimado="25.50"
            )

    rows = []
    progress(f"save alone: {args.saves} Categoria saves")
    timed(save_alone, WARMUP)
    rows.append(Row("save alone (Categoria, no events)", timed(save_alone, args.saves)))
    rows += sent_on_commit_rows(args, save_reserva, broker_url, Proxy, tmp)

    # The outbox: what the request spends (no relay running, rows pile up) ...
    settings.EVENT_BRIDGE = outbox
    OutboxEvent.objects.all().delete()
    progress(f"relay only (SEND_ON_COMMIT False): {args.saves} Reserva saves")
    timed(save_reserva, WARMUP)
    times = timed(save_reserva, args.saves)
    stored = OutboxEvent.objects.count()
    rows.append(
        Row(
            "relay only: Reserva save + model_events (outbox, SEND_ON_COMMIT False)",
            times,
            f"{stored}/{args.saves + WARMUP} events in the outbox, committed with their save; "
            f"the relay sends them (relay rows)",
        )
    )
    # ... then the relay drains them: its throughput.
    before = depth()
    relay = Relay(Publisher(broker_url, cooldown=0), broker="bench", wait=Poller(1))
    started = time.perf_counter()
    relay.drain()
    drained = time.perf_counter() - started
    relay.publisher.close()
    arrived = depth() - before
    progress(f"relay: drained {relay.sent} in {drained:.2f} s")

    # Commit -> confirmed publish, one save at a time, with the relay running.
    progress(f"relay: {args.latency_saves} saves at {args.latency_rate}/s, relay running")
    written: list[str] = []

    def note_id(instance: Any, **_: Any) -> None:
        written.append(instance.event_id)

    post_save.connect(note_id, sender=OutboxEvent, dispatch_uid="bench")
    committed: dict[str, float] = {}
    with RelayThread(broker_url) as running:
        for _ in range(args.latency_saves):
            save_reserva()
            committed[written[-1]] = time.perf_counter()
            time.sleep(1 / args.latency_rate)
        wait_until(lambda: len(running.confirms.at) >= args.latency_saves, 30)
    post_save.disconnect(note_id, sender=OutboxEvent, dispatch_uid="bench")
    latencies = [running.confirms.at[i] - t for i, t in committed.items()]
    rows.append(
        Row(
            f"relay: commit -> confirmed publish ({connection.vendor}, wakes {running.wait})",
            latencies,
            f"draining {relay.sent} stored events: {relay.sent / drained:,.0f} events/s, "
            f"{arrived}/{relay.sent} in the bridge's queue",
        )
    )

    # Direct delivery: the confirmed publish on commit.
    settings.EVENT_BRIDGE = direct
    progress(f"ours (direct): {args.saves} Reserva saves")
    timed(save_reserva, WARMUP)
    before = depth()
    lost_before = failures.count
    times = timed(save_reserva, args.saves)
    arrived = depth() - before
    lost = failures.count - lost_before
    rows.append(
        Row(
            "ours direct: Reserva save + model_events (confirmed publish)",
            times,
            f"{arrived}/{args.saves} in the bridge's queue, {lost} not sent",
        )
    )
    publisher().close()

    settings.EVENT_BRIDGE = outbox
    rows.append(outbox_down(args, save_reserva, broker_url, depth, Proxy, relay_log))
    progress(f"  the relay's last warning: {relay_log.last}")
    progress(f"relay only, bridge down: {args.down_saves} Reserva saves, relay running")
    before = depth()
    with RelayThread(broker_url) as running:
        times = timed(save_reserva, args.down_saves)
        wait_until(lambda: len(running.confirms.at) >= args.down_saves, 30)
    arrived = depth() - before
    rows.append(
        Row(
            "relay only, bridge down (no consumer)",
            times,
            f"0/{args.down_saves} events lost: {arrived}/{args.down_saves} wait in the "
            f"bridge's quorum queue until it is back (direct delivery: the same)",
        )
    )

    progress(f"ours direct, RabbitMQ down: {args.down_saves} Reserva saves")
    settings.EVENT_BRIDGE = {**direct, "BROKER_URL": down_url}
    lost_before = failures.count
    times = timed(save_reserva, args.down_saves)
    lost = failures.count - lost_before
    reserva = Reserva.objects.first()
    assert reserva is not None
    rows.append(
        Row(
            "ours direct, RabbitMQ down (closed port)",
            times,
            f"first save {times[0] * 1000:.0f} ms; {lost}/{args.down_saves} events LOST "
            f"(logged, not raised; the save commits); after a failure the publisher "
            f"fails at once for 5 s (cooldown), so only the first save waits",
        )
    )
    progress(f"  last warning: {failures.last}")
    settings.EVENT_BRIDGE = outbox
    rows.append(bare_kombu(args, broker_url, signals.reserva(reserva)))
    rows.append(celery_send_task(args, broker_url, signals.reserva(reserva)))
    with Connection(broker_url) as conn:
        conn.default_channel.queue_purge(queue.name)
    return rows


def outbox_down(
    args: argparse.Namespace,
    save: Callable[[], None],
    broker_url: str,
    depth: Callable[[], int],
    proxy_class: type[Proxy],
    warnings: Failures,
) -> Row:
    """Saves while the relay cannot reach RabbitMQ, then how long until all arrived."""
    from producer.models import OutboxEvent  # noqa: PLC0415

    progress(f"relay only, RabbitMQ down: {args.down_saves} saves, the relay's proxy refusing")
    proxy = proxy_class(broker_url)
    proxy.down()
    before = depth()
    try:
        with RelayThread(proxy.url) as running:
            times = timed(save, args.down_saves)
            waiting = OutboxEvent.objects.count()
            # Up again only once the relay has tried, failed and said what waits.
            wait_until(lambda: f"{waiting} events waiting" in warnings.last, 60)
            proxy.up()
            back = time.monotonic()
            wait_until(lambda: len(running.confirms.at) >= args.down_saves, 60)
            recovered = time.monotonic() - back
    finally:
        proxy.close()
    arrived = depth() - before
    lost = args.down_saves - min(arrived, args.down_saves)
    return Row(
        "relay only, RabbitMQ down (SEND_ON_COMMIT False; relay behind a refusing proxy)",
        times,
        f"{lost}/{args.down_saves} events lost: {waiting} waited in the outbox, "
        f"{arrived} reached the bridge's queue {recovered:.1f} s after RabbitMQ was back "
        f"(relay backoff 0.5 s doubling to 30 s)",
    )


def reserva_event(data: dict[str, object]) -> tuple[dict[str, object], str]:
    from api_rest.events import catalog  # noqa: PLC0415 - the example project's
    from schemas import Reader  # noqa: PLC0415
    from schemas.topology import routing_key  # noqa: PLC0415

    body = json.dumps({"type": "reserva:creada", "data": data})
    event = Reader(catalog, strict=True).body("emit-event", body)
    return event.model_dump(mode="json"), routing_key(event)


def bare_kombu(args: argparse.Namespace, broker_url: str, data: dict[str, object]) -> Row:
    from kombu import Connection  # noqa: PLC0415

    from messaging.entities import exchange  # noqa: PLC0415
    from schemas.topology import EVENTS  # noqa: PLC0415

    body, key = reserva_event(data)
    progress(f"kombu: {args.saves} publishes with confirms")
    with Connection(broker_url, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        ex = exchange(EVENTS)

        def publish() -> None:
            producer.publish(body, exchange=ex, routing_key=key, serializer="json")

        producer.publish(body, exchange=ex, routing_key=key, serializer="json", declare=[ex])
        timed(publish, WARMUP)
        return Row("kombu Producer.publish, confirms", timed(publish, args.saves))


def celery_send_task(args: argparse.Namespace, broker_url: str, data: dict[str, object]) -> Row:
    from celery import Celery  # noqa: PLC0415

    from schemas.topology import EVENTS  # noqa: PLC0415

    body, key = reserva_event(data)
    progress(f"celery: {args.saves} send_task, no confirms")
    app = Celery("bench", broker=broker_url, set_as_current=False)

    def send() -> None:
        app.send_task("bridge.publish", args=(body,), exchange=EVENTS.name, routing_key=key)

    try:
        timed(send, WARMUP)
        return Row("celery send_task, no confirms", timed(send, args.saves))
    finally:
        app.close()


# The seed: NestJS gateway and socket.io clients


def sio_clients_main(port: int, count: int) -> int:
    """Child process: connect ``count`` clients, say ``ready N``, count events till stdin closes."""
    sys.path.insert(0, str(BASELINES))
    from sio_client import connect  # noqa: PLC0415 - beside this file, not a package

    raise_open_files(count + 256)
    received = [0]

    def on_event(_data: bytearray, _now: float) -> None:
        received[0] += 1

    async def run() -> None:
        gate = asyncio.Semaphore(50)

        async def one() -> object:
            async with gate:
                return await connect(
                    port, on_event, namespace="/ws", event="business:event", connect_timeout=15
                )

        clients = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        ok = [c for c in clients if not isinstance(c, BaseException)]
        print(f"ready {len(ok)}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        print(f"events {received[0]}", flush=True)
        await asyncio.gather(*(c.close() for c in ok), return_exceptions=True)  # type: ignore[attr-defined]

    asyncio.run(run())
    return 0


def seed_rows(  # noqa: PLR0915 - one sequence: start, measure, stop, measure again
    args: argparse.Namespace, data: dict[str, object], tmp: Path
) -> list[Row]:
    import requests  # noqa: PLC0415

    if shutil.which("node") is None or shutil.which("npm") is None:
        progress("seed: skipped, node and npm are not on the PATH")
        return []
    progress("seed: build.sh")
    subprocess.run([str(NESTJS / "build.sh")], check=True, timeout=BUILD_TIMEOUT)  # noqa: S603
    log = (tmp / "nestjs.log").open("wb")
    gateway = ["taskset", "-c", str(SERVER_CORE), "node", str(NESTJS / "dist" / "main.js")]
    server = subprocess.Popen(  # noqa: S603 - fixed arguments, from the PATH
        [*gateway, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    clients: subprocess.Popen[str] | None = None
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(rb":(\d+)/ws", line)
        if found is None:
            raise RuntimeError(f"nestjs did not start: {line!r}")
        port = int(found[1])
        base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("nestjs: /api/health did not answer")
            time.sleep(0.2)
        progress(f"seed: {args.clients} socket.io clients on core {CLIENT_CORE}")
        child = ["taskset", "-c", str(CLIENT_CORE), sys.executable, __file__]
        clients = subprocess.Popen(  # noqa: S603 - fixed arguments, from the PATH
            [*child, "--sio-clients", str(port), "--clients", str(args.clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert clients.stdout is not None
        assert clients.stdin is not None
        ready = int(clients.stdout.readline().split()[1])
        connections = requests.get(f"{base}/api/health", timeout=2).json()["connections"]
        progress(f"seed: {ready} clients ready, gateway counts {connections}")
        url = f"{base}/api/dashboard/emit-event"
        statuses: list[int] = []

        def post() -> None:
            body = {"type": "reserva:creada", "data": data, "timestamp": "2025-01-01T00:00:00Z"}
            statuses.append(requests.post(url, json=body, timeout=POST_TIMEOUT).status_code)

        progress(f"seed: {args.saves} POSTs")
        timed(post, WARMUP)
        times = timed(post, args.saves)
        time.sleep(1)
        clients.stdin.close()
        delivered = int(clients.stdout.readline().split()[1])
        expected = (WARMUP + args.saves) * ready
        accepted = sum(s == 202 for s in statuses)
        rows = [
            Row(
                f"seed: requests.post to NestJS, {connections} clients",
                times,
                f"{accepted}/{len(statuses)} answered 202; {delivered}/{expected} deliveries",
            )
        ]
        clients.wait(STOP_TIMEOUT)
        stop(server)
        progress(f"seed, gateway stopped: {args.down_saves} POSTs")
        lost = 0

        def post_down() -> None:
            nonlocal lost
            try:
                post()
            except requests.ConnectionError:
                lost += 1

        times = timed(post_down, args.down_saves)
        rows.append(
            Row(
                "seed, gateway stopped",
                times,
                f"ConnectionError, {lost}/{args.down_saves} events LOST",
            )
        )
        return rows
    finally:
        if clients is not None:
            with contextlib.suppress(OSError):
                clients.stdin.close()  # type: ignore[union-attr]
            stop(clients)  # type: ignore[arg-type]
        stop(server)
        log.close()


# Report


def versions() -> str:
    import celery  # noqa: PLC0415
    import django  # noqa: PLC0415
    import kombu  # noqa: PLC0415
    import requests  # noqa: PLC0415

    try:
        rabbit = rabbitmqctl("version")
    except (subprocess.SubprocessError, OSError) as exc:
        rabbit = f"unknown ({exc})"
    node = "none"
    if shutil.which("node"):
        node = subprocess.run(
            ["node", "--version"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return (
        f"Python {platform.python_version()}, Django {django.__version__}, "
        f"kombu {kombu.__version__}, Celery {celery.__version__}, "
        f"requests {requests.__version__}, RabbitMQ {rabbit}, Node {node}, "
        f"{os.cpu_count()} cores, Linux {platform.release()}"
    )


def report(rows: list[Row], header: str, args: argparse.Namespace) -> None:
    print()
    print(header)
    print(
        f"{args.saves} timed calls per row ({args.down_saves} when down), after {WARMUP} "
        f"untimed; {DB_DIR[0]}; this process on core {CLIENT_CORE}"
    )
    print()
    width = max(len(r.path) for r in rows)
    print(f"{'path':<{width}}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  note")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 8}  {'-' * 8}  ----")
    for r in rows:
        print(
            f"{r.path:<{width}}  {r.p50:8.3f}  {r.pct(0.99):8.3f}  "
            f"{max(r.times) * 1000:8.3f}  {r.note}"
        )
    by = {r.path.split(":")[0].split(",")[0]: r for r in rows}
    print()
    for label, prefix in (("ours", "ours:"), ("ours direct", "ours direct:")):
        ours = next((r for r in rows if r.path.startswith(prefix)), None)
        if ours is None:
            continue
        for name, other in (
            ("seed", next((r for r in rows if r.path.startswith("seed:")), None)),
            ("bare kombu with confirms", by.get("kombu Producer.publish")),
            ("celery send_task", by.get("celery send_task")),
        ):
            if other is not None:
                print(
                    f"{label} / {name}: p50 {ours.p50 / other.p50:.3f}, "
                    f"p99 {ours.pct(0.99) / other.pct(0.99):.3f}"
                )
    alone = next((r for r in rows if r.path.startswith("save alone")), None)
    kombu = by.get("kombu Producer.publish")
    for label, prefix in (("ours", "ours:"), ("ours direct", "ours direct:")):
        ours = next((r for r in rows if r.path.startswith(prefix)), None)
        if ours is not None and alone is not None and kombu is not None:
            share = ours.p50 - alone.p50
            print(
                f"{label} - save alone (the event's share of the save, roughly): p50 "
                f"{share:.3f} ms, {share / kombu.p50:.3f} x bare kombu with confirms"
            )
    print(
        "\nours, ours direct and save alone time the whole transaction.atomic() block (the"
        " save, its commit and, for ours, the INSERT into the outbox; for ours direct, the"
        " confirmed publish on commit); nothing is subtracted. The relay row times each"
        " event from its commit to RabbitMQ's confirm."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sio_clients is not None:
        return sio_clients_main(args.sio_clients, args.clients)
    if (os.cpu_count() or 1) < 2:
        sys.exit("producer: needs 2 cores")
    os.sched_setaffinity(0, {CLIENT_CORE})
    raise_open_files(args.clients + 256)
    sys.path.insert(0, str(ROOT))
    started = time.monotonic()
    rows: list[Row] = []
    # SQLite on tmpfs when there is one: a disk's fsync per commit is noise next to the event.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - a fresh subdirectory
    with (
        vhost() as name,
        tempfile.TemporaryDirectory(prefix=VHOST_PREFIX, dir=shm) as tmp_name,
    ):
        tmp = Path(tmp_name)
        broker_url = f"{args.amqp}/{name}"
        down_url = f"amqp://guest:guest@{HOST}:{closed_port()}/{name}"
        progress(f"vhost {name}")
        setup_django(broker_url, tmp, args.database_url, args.conn_max_age)
        header = versions()
        rows += django_rows(args, broker_url, down_url, tmp)
        from api_rest import signals  # noqa: PLC0415
        from api_rest.models import Reserva  # noqa: PLC0415

        reserva = Reserva.objects.first()
        assert reserva is not None
        try:
            rows += seed_rows(args, signals.reserva(reserva), tmp)
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            progress(f"seed: not measured: {exc}")
    order = [
        "save alone",
        "ours:",
        "sent on commit",
        "relay only:",
        "ours direct:",
        "relay:",
        "seed:",
        "kombu",
        "celery",
        "ours,",
        "relay only,",
        "ours direct,",
        "seed,",
    ]
    rows.sort(key=lambda r: next(i for i, p in enumerate(order) if r.path.startswith(p)))
    report(rows, header, args)
    print(f"\ntook {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
