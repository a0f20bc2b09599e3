"""``event-bridge serve --workers N`` (issue 17): N processes on one port, each an instance."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from schemas import DASHBOARD, Event
from tests.support.load import BridgeProcess
from tests.support.rabbit import publish_to

CLIENTS = 40


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


#: Set whenever a client sees something; the test waits on it, never on a clock.
CHANGED = asyncio.Event()


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@dataclass
class Client:
    """A client that keeps the ids of the events it is shown, reconnecting if dropped."""

    port: int
    instances: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    #: Attempts that failed before a welcome (a worker killed in the middle of one).
    failures: list[str] = field(default_factory=list)

    async def follow(self, welcomed: asyncio.Event) -> None:
        path = "/ws"
        while True:
            try:
                async with connect(f"ws://127.0.0.1:{self.port}{path}") as ws:
                    await self._welcome(ws)
                    welcomed.set()
                    await self._read(ws)
            except ConnectionClosed:
                self.dropped.set()
                CHANGED.set()
            except (OSError, InvalidHandshake) as exc:
                # As /client.js does: try again after a random pause of up to 0.5 s.
                self.failures.append(repr(exc))
                await asyncio.sleep(random.uniform(0, 0.5))
            # As /client.js does after a drop: the same URL, resuming after the last id.
            if self.ids:
                path = f"/ws?after={self.ids[-1]}"

    async def _welcome(self, ws: ClientConnection) -> None:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "bridge:welcome"
        self.instances.append(welcome["instance"])
        await ws.send('{"op": "ping"}')  # no resume asked: live events at once

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            event = json.loads(message)
            if event["type"] == DASHBOARD:
                self.ids.append(event["id"])
                CHANGED.set()


@asynccontextmanager
async def following(port: int, count: int) -> AsyncIterator[list[Client]]:
    clients = [Client(port) for _ in range(count)]
    welcomed = [asyncio.Event() for _ in clients]
    tasks = [asyncio.create_task(c.follow(w)) for c, w in zip(clients, welcomed, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in welcomed)), 15)
        yield clients
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(
    condition: Callable[[], bool], timeout: float = 15, clients: list[Client] | None = None
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                CHANGED.clear()
                await CHANGED.wait()
    except TimeoutError:
        # Say which clients fell short, and what they saw, rather than only "timeout".
        most = max((len(c.ids) for c in clients or []), default=0)
        short = [
            f"{c.instances}: {len(c.ids)} events, failures {c.failures}"
            for c in clients or []
            if len(c.ids) < most
        ]
        raise AssertionError(f"not within {timeout} s; clients behind: {short[:10]}") from None


def events(run: str, numbers: range) -> list[Event]:
    return [Event.untyped(DASHBOARD, {"n": n}, id=f"{run}-{n}") for n in numbers]


@pytest.mark.timeout(120)
async def test_workers_share_a_port_and_a_killed_one_s_clients_resume_on_another(
    own_amqp_url: str, tmp_path: Path
) -> None:
    run = "w"
    async with AsyncExitStack() as stack:
        served = BridgeProcess(own_amqp_url, "pool", tmp_path, "--workers", "2")
        consuming, restarted = "consuming bridge.instance.pool-", "starting it again"
        # Counted from the start: a line logged before a wait began counts too.
        served.count(consuming)
        served.count(restarted)
        await stack.enter_async_context(served)
        await served.counted(consuming, 2, 15)
        clients = await stack.enter_async_context(following(served.port, CLIENTS))
        # The kernel spreads the connections over both workers, each an instance.
        assert {c.instances[0] for c in clients} == {"pool-1", "pool-2"}

        before = events(run, range(3))
        await asyncio.to_thread(publish_to, own_amqp_url, *before)
        await until(lambda: all(len(c.ids) == 3 for c in clients))

        doomed = children(served.pid)[0]
        os.kill(doomed, signal.SIGKILL)
        await until(lambda: any(c.dropped.is_set() for c in clients))
        after = events(run, range(3, 6))
        await asyncio.to_thread(publish_to, own_amqp_url, *after)
        await served.counted(restarted, 1, 15)
        await until(lambda: all(len(c.ids) == 6 for c in clients), 30, clients)
        await served.counted(consuming, 3, 30)

        # Every client saw every event once, in order, the dropped ones included.
        assert [c.ids for c in clients] == [[e.id for e in before + after]] * CLIENTS
        dropped = [c.dropped.is_set() for c in clients]
        lost = {c.instances[0] for c in clients if c.dropped.is_set()}
        assert len(lost) == 1
        assert dropped == [c.instances[0] in lost for c in clients]
        workers = children(served.pid)
        assert len(workers) == 2
        assert doomed not in workers

        assert served.proc is not None
        served.proc.terminate()
        assert await asyncio.wait_for(served.proc.wait(), 10) == 0
    assert not any(map(alive, workers))


async def test_workers_refuse_a_port_that_is_taken(own_amqp_url: str, tmp_path: Path) -> None:
    """SO_REUSEPORT would join another process listening there as this user."""
    async with BridgeProcess(own_amqp_url, "first", tmp_path, "--workers", "2") as first:
        taken = BridgeProcess(own_amqp_url, "second", tmp_path, "--workers", "2")
        taken.args[taken.args.index("--port") + 1] = str(first.port)
        process = await asyncio.create_subprocess_exec(
            *taken.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port}" in err.decode()
    assert b"event-bridge: instance" not in out


async def test_workers_stop_when_their_parent_is_killed(own_amqp_url: str, tmp_path: Path) -> None:
    """A parent killed outright cannot stop them: the kernel does (PR_SET_PDEATHSIG)."""
    async with BridgeProcess(own_amqp_url, "orphans", tmp_path, "--workers", "2") as served:
        workers = children(served.pid)
        assert len(workers) == 2
        served.kill()
        assert served.proc is not None
        await served.proc.wait()
        await asyncio.wait_for(asyncio.gather(*map(exited, workers)), 15)


async def exited(pid: int) -> None:
    """Wait until process ``pid`` (not a child of this one) has ended: a pidfd
    becomes readable then."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(handle, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(handle)
        os.close(handle)
