"""Fixtures shared by every test: a RabbitMQ vhost of this run's own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

#: The RabbitMQ the tests use; each run gets a fresh vhost on it.
BROKER = os.environ.get("EVENT_BRIDGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

_PREFIX = "event-bridge-test-"
_STALE_AFTER = 24 * 3600


def _rabbitmqctl(*args: str) -> str:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail(
            "rabbitmqctl is not on PATH: the tests need it to give each run its own vhost. "
            "Run them with ./scripts/test, on the machine that runs RabbitMQ."
        )
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _drop_stale_vhosts() -> None:
    # A run that was killed leaves its vhost behind; a day later it is fair game.
    for name in _rabbitmqctl("list_vhosts", "--silent", "name").split():
        if name.startswith(_PREFIX):
            started = int(name.removeprefix(_PREFIX).split("-")[0])
            if time.time() - started > _STALE_AFTER:
                _rabbitmqctl("delete_vhost", name)


@contextlib.contextmanager
def _vhost() -> Iterator[str]:
    vhost = f"{_PREFIX}{int(time.time())}-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(BROKER)
    user = parts.username or "guest"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        yield urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The URL of a vhost that only this test run uses; it is deleted afterwards."""
    _drop_stale_vhosts()
    with _vhost() as url:
        yield url


@pytest.fixture
def own_amqp_url(amqp_url: str) -> Iterator[str]:
    """A vhost for one test alone: no queue of an earlier test's bridge (each keeps
    its queue for an hour) takes a copy of every event it publishes."""
    with _vhost() as url:
        yield url
