"""The outbox relay as a real process (and :class:`Proxy`, to play RabbitMQ going away).

The relay runs as ``python example/manage.py event_bridge_relay``, as deployed, on
the test database: SQLite in a file (conftest.py makes the test database a file
for this) or PostgreSQL's ``test_<name>``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests.django.proxy import Proxy
from tests.support.output import Output

__all__ = ["Proxy", "RelayProcess", "database_url", "manage_env", "running_relay"]

ROOT = Path(__file__).resolve().parents[2]
#: Seconds a test waits for a relay to say something.
WAIT = 20.0
#: How often a test's relay looks at the outbox (SQLite: no NOTIFY), in seconds.
POLL = 0.05


def database_url() -> str:
    """The URL of the database this test process uses now (the test database)."""
    given = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(given["NAME"])
        assert Path(name).is_absolute(), f"the relay needs a file, not {name!r}"
        return f"sqlite:///{name}"
    assert connection.vendor == "postgresql", connection.vendor
    user = quote(given.get("USER") or "", safe="")
    password = given.get("PASSWORD") or ""
    userinfo = f"{user}:{quote(password, safe='')}" if password else user
    host = given.get("HOST") or "127.0.0.1"
    port = given.get("PORT") or 5432
    return f"postgresql://{userinfo}@{host}:{port}/{given['NAME']}"


def manage_env(broker_url: str) -> dict[str, str]:
    """The environment of a ``manage.py`` process on the test database and ``broker_url``."""
    return {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": database_url(),
        "BRIDGE_BROKER_URL": broker_url,
    }


class RelayProcess:
    """``manage.py event_bridge_relay`` in a process of its own, its output read line by line."""

    def __init__(self, broker_url: str, *args: str) -> None:
        env = {**manage_env(broker_url), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, str(ROOT / "example" / "manage.py"), "event_bridge_relay"]
        self.proc = subprocess.Popen(
            [*command, "--poll-interval", str(POLL), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.out = Output(self.proc.stdout)

    @property
    def lines(self) -> list[str]:
        return self.out.lines

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The first line from now on that holds ``text``; fails after ``timeout`` s."""
        return self.out.wait_for(text, timeout, fresh=True)

    @property
    def output(self) -> str:
        return self.out.text

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = WAIT) -> int:
        """Send ``signum`` and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        self.out.close()
        return code


@contextlib.contextmanager
def running_relay(broker_url: str, *args: str) -> Iterator[RelayProcess]:
    """A relay that has started, stopped with SIGTERM (or killed) at the end."""
    relay = RelayProcess(broker_url, *args)
    try:
        relay.wait_for("relay: outbox of database")
        yield relay
    finally:
        try:
            relay.stop()
        except subprocess.TimeoutExpired:
            relay.stop(signal.SIGKILL)
