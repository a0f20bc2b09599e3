"""A running bridge and WebSocket clients for synchronous tests, such as Django's.

Django's ORM is synchronous and refuses to run while an event loop runs in its
thread, so the Django tests stay synchronous (pytest-django as usual) and
everything asyncio (the bridge, its RabbitMQ consumer, the ``websockets``
clients, Playwright) runs on an event loop in a thread of its own.
:meth:`LoopThread.call` runs one coroutine there and waits for its result.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect

from api_rest.events import Reserva, ReservaCancelada
from bridge.app import Bridge
from schemas import Event
from tests.support.bridges import Watch, rabbit, recv_json, running, settings, url
from tests.support.rabbit import publish_to

__all__ = ["Browser", "LiveBridge", "LoopThread", "live_bridge"]

T = TypeVar("T")

#: Seconds a test waits for a message before it fails.
WAIT = 10.0
#: The start of the ids of the marker events :meth:`LiveBridge.settle` publishes.
MARKER = "marker-"


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop")

    def start(self) -> None:
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.loop.shutdown_asyncgens())
        self.call(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


class Browser:
    """A client of ``/ws``: welcomed, past the resume window, and read up to date.

    Its methods block the calling thread until the loop thread has the answer.
    """

    def __init__(self, loop: LoopThread, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self._loop = loop
        self._ws = ws
        #: The ``bridge:welcome`` message.
        self.welcome = welcome

    def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next message, markers aside; fails the test if none comes within ``timeout`` s."""
        while is_marker(message := self._next(timeout)):
            pass
        return message

    def receive_until(self, marker_id: str, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The messages before the marker ``marker_id``, other markers and pongs aside."""
        before: list[dict[str, Any]] = []
        while (message := self._next(timeout)).get("id") != marker_id:
            if not is_marker(message) and message["type"] != "bridge:pong":
                before.append(message)
        return before

    def _next(self, timeout: float) -> dict[str, Any]:
        return self._loop.call(recv_json(self._ws, timeout), timeout + 5)


def is_marker(message: dict[str, Any]) -> bool:
    """Whether ``message`` is a marker of :meth:`LiveBridge.settle`, not a test's event."""
    return str(message.get("id", "")).startswith(MARKER)


class LiveBridge:
    """A bridge consuming from RabbitMQ, and the clients tests open on it."""

    def __init__(
        self,
        loop: LoopThread,
        bridge: Bridge,
        amqp_url: str,
        before_settle: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.bridge = bridge
        self.amqp_url = amqp_url
        #: Called before the marker leaves, e.g. to wait until an outbox relay sent all.
        self.before_settle = before_settle

    @property
    def port(self) -> int:
        return self.bridge.port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @contextmanager
    def browser(self, token: str) -> Iterator[Browser]:
        """A connected client with ``token``, which has read everything sent so far."""
        stack = AsyncExitStack()
        try:
            browser = self.loop.call(self._open(stack, token))
            self.settle(browser)
            yield browser
        finally:
            self.loop.call(stack.aclose())

    async def _open(self, stack: AsyncExitStack, token: str) -> Browser:
        ws = await stack.enter_async_context(connect(url(self, token=token)))
        welcome = await recv_json(ws)
        assert welcome["type"] == "bridge:welcome", welcome
        await ws.send('{"op": "ping"}')  # ends the resume window: live events flow at once
        return Browser(self.loop, ws, welcome)

    def settle(self, *browsers: Browser) -> list[list[dict[str, Any]]]:
        """What each browser received before now, leaving nothing in flight.

        Publishes a marker event to RabbitMQ and reads each browser up to it.
        RabbitMQ keeps the order of one queue, so every event published (and
        confirmed) before this call is among what is returned: an empty list
        proves that nothing was sent to that browser. Events still in an outbox
        are published first, if ``before_settle`` waits for them.
        """
        if self.before_settle is not None:
            self.before_settle()
        marker = Event.of(
            ReservaCancelada(reserva=Reserva(id=0), motivo="marker"), id=f"{MARKER}{uuid.uuid4()}"
        )
        publish_to(self.amqp_url, marker)
        return [browser.receive_until(marker.id) for browser in browsers]


@contextmanager
def live_bridge(
    amqp_url: str, state_dir: Path, before_settle: Callable[[], None] | None = None
) -> Iterator[LiveBridge]:
    """A bridge on ``amqp_url``, consuming from a queue of its own, on a loop thread.

    Any browser origin may connect, so that pages from a test server can.
    """
    config = settings(
        state_dir,
        broker_url=amqp_url,
        instance=f"django-{uuid.uuid4().hex[:8]}",
        allowed_origins=frozenset({"*"}),
    )

    async def start(stack: AsyncExitStack) -> Bridge:
        watch = Watch()
        bridge = await stack.enter_async_context(running(config, rabbit(config, watch)))
        await asyncio.wait_for(watch.up.wait(), 15)
        return bridge

    with loop_thread() as loop:
        stack = AsyncExitStack()
        bridge = loop.call(start(stack))
        try:
            yield LiveBridge(loop, bridge, amqp_url, before_settle)
        finally:
            loop.call(stack.aclose())
