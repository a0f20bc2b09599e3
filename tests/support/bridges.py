"""Running bridges for tests: in this process on port 0, or as a real ``event-bridge serve``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect

from api_rest.events import catalog
from bridge.amqp import RabbitBroker
from bridge.app import Bridge, open_broker
from bridge.auth import Authenticator
from bridge.broker import Broker
from bridge.config import Limits, Settings
from bridge.decode import Decoder
from schemas import Reader

SECRET = "test-secret-that-is-long-enough-for-hs256"
EVENT_BRIDGE = str(Path(sys.executable).parent / "event-bridge")


def settings(state_dir: Path, **changes: Any) -> Settings:
    base = Settings(
        host="127.0.0.1",
        port=0,
        broker_url="memory://",
        jwt_secret=SECRET,
        jwt_secret_generated=False,
        api_key=None,
        allow_anonymous=False,
        history_size=100,
        allowed_origins=None,
        instance="test",
        compression=False,
        state_dir=state_dir,
        limits=Limits(resume_window=0.2),
        catalog=catalog,
        catalog_spec="api_rest.events",
    )
    return replace(base, **changes)


class Watch:
    """Follows a broker's connectivity: pass :meth:`on_state` as its ``on_state``."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.down = asyncio.Event()

    def on_state(self, connected: bool) -> None:
        (self.up if connected else self.down).set()
        (self.down if connected else self.up).clear()


def rabbit(config: Settings, watch: Watch) -> RabbitBroker:
    """The RabbitMQ broker a bridge with ``config`` would open, reporting to ``watch``."""
    return RabbitBroker(
        config.broker_url,
        instance=config.instance,
        min_backoff=0.1,
        on_state=watch.on_state,
        decoder=Decoder(Reader(config.catalog, strict=config.strict_events)),
    )


@asynccontextmanager
async def running(config: Settings, broker: Broker | None = None) -> AsyncIterator[Bridge]:
    """A bridge in this process, stopped afterwards."""
    bridge = Bridge(config, broker or open_broker(config))
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


def token(
    _bridge: Bridge | None = None, user: str = "u1", roles: tuple[str, ...] = (), ttl: float = 300
) -> str:
    """A token every test bridge accepts: they all share :data:`SECRET`."""
    return Authenticator(SECRET).issue(user, roles, ttl=timedelta(seconds=ttl))


def operator() -> dict[str, str]:
    """An operator's headers: a monitor token, for stats, metrics and everyone's history."""
    monitor = Authenticator(SECRET).issue("ops", [], ttl=timedelta(minutes=5), monitor=True)
    return {"Authorization": f"Bearer {monitor}"}


class _HasPort(Protocol):
    @property
    def port(self) -> int: ...


def url(bridge: _HasPort, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{bridge.port}/ws" + (f"?{params}" if params else "")


@asynccontextmanager
async def client(bridge: _HasPort, **query: str) -> AsyncIterator[ClientConnection]:
    """A connected client whose welcome was read."""
    async with connect(url(bridge, **query)) as ws:
        welcome = json.loads(await recv(ws))
        assert welcome["type"] == "bridge:welcome"
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5) -> str:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str)
    return message


async def recv_json(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await recv(ws, timeout))
    return message


class Served:
    """``event-bridge serve`` in a subprocess, with its output read line by line."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.args = [EVENT_BRIDGE, "serve", "--port", "0", "--jwt-secret", SECRET, *args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> str:
        """Start it and return its startup line (which names the port)."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, cwd=self.cwd
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 15)).decode()
        assert "event-bridge: instance" in line, line
        self.port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
        return line

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, timeout: float = 15) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def logged(self, text: str, timeout: float = 15) -> str:
        """Wait for a log line containing ``text``; returns it."""
        assert self.proc is not None
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while line := (await self.proc.stderr.readline()).decode():
                if text in line:
                    return line
        raise AssertionError(f"the bridge exited without logging {text!r}")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
