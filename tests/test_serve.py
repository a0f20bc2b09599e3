"""``event-bridge serve`` as an operator runs it: startup line, bad settings, SIGTERM."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.bridges import EVENT_BRIDGE, SECRET, Served, client, recv, token
from tests.support.httpclient import request


async def test_the_startup_line_names_broker_address_and_auth(tmp_path: Path) -> None:
    served = Served("--state-dir", str(tmp_path), "--instance", "line")
    line = await served.start()
    try:
        assert line.startswith("event-bridge: instance line on ws://127.0.0.1:")
        assert "broker memory:// (embedded, one process), auth JWT" in line
        # What the default mode exposes (issue 14), plainly.
        assert line.rstrip().endswith(
            "; publishing open to anyone on this machine (no --api-key), reads need a token, "
            "other origins: none, hosts: IP addresses, localhost"
        )
    finally:
        await served.kill()


async def test_without_a_secret_it_prints_a_dashboard_link(tmp_path: Path) -> None:
    served = Served("--state-dir", str(tmp_path))
    served.args.remove("--jwt-secret")
    served.args.remove(served.args[served.args.index("serve") + 3])  # the secret itself
    line = await served.start()
    try:
        assert "auth JWT, random secret for this run" in line
        assert served.proc is not None
        assert served.proc.stdout is not None
        link = (await served.proc.stdout.readline()).decode()
        assert link.startswith(f"dashboard: http://127.0.0.1:{served.port}/dashboard.html#token=")
    finally:
        await served.kill()


async def test_it_raises_its_open_file_limit_and_says_what_it_allows(tmp_path: Path) -> None:
    """Issue 17: every connection is a file; a soft limit of 1,024 held the bridge to ~1,000."""
    served = Served("--state-dir", str(tmp_path))
    served.args[:0] = [shutil.which("prlimit") or "prlimit", "--nofile=1024:4096", "--"]
    await served.start()
    try:
        raised = await served.logged("open-file limit")
        warned = await served.logged("open-file limit")
        assert served.proc is not None
        limits = await asyncio.to_thread(Path(f"/proc/{served.proc.pid}/limits").read_text)
    finally:
        await served.kill()
    assert "raised the open-file limit from 1024 to 4096" in raised
    assert "allows about 4032 connections, fewer than --max-connections 50000" in warned
    assert "Raise it (ulimit -n" in warned
    assert re.search(r"Max open files\s+4096\s+4096", limits), limits


def test_a_port_in_use_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [EVENT_BRIDGE, "serve", "--port", str(port), "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Choose another --port" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_password_never_shows(tmp_path: Path) -> None:
    done = subprocess.run(
        [EVENT_BRIDGE, "serve", "--broker", "redis://user:hunter2@host/0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2
    assert "hunter2" not in done.stderr
    assert "***" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--broker", "redis://localhost"], "--broker must be memory:// or amqp://"),
        (["--jwt-secret", "short"], "--jwt-secret must be at least 32 characters"),
        (["--port", "70000"], "Invalid value for '--port'"),
        (["--instance", "a b"], "--instance 'a b': use 1 to 200 letters"),
        (["--history-size", "0"], "Invalid value for '--history-size'"),
        (["--max-send-buffer", "10"], "Invalid value for '--max-send-buffer'"),
        (["--batch-window", "0"], "Invalid value for '--batch-window'"),
        (["--workers", "2"], "--workers 2 needs RabbitMQ (--broker amqp://…)"),
        (["--workers", "0"], "Invalid value for '--workers'"),
        # Issue 14: an empty key let every unkeyed caller in; a short one is guessable.
        (["--api-key", ""], "BRIDGE_API_KEY) must be at least 16 characters"),
        (["--api-key", "k3y"], "BRIDGE_API_KEY) must be at least 16 characters"),
        (["--api-key", "k" * 16, "--api-key-file", __file__], "give --api-key or --api-key-file"),
    ],
)
def test_bad_settings_exit_2_with_one_line(args: list[str], says: str) -> None:
    done = subprocess.run(
        [EVENT_BRIDGE, "serve", *args], capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr


def test_serve_help_lists_every_option_with_its_variable() -> None:
    done = subprocess.run(
        [EVENT_BRIDGE, "serve", "--help"], capture_output=True, text=True, check=True, timeout=30
    )
    for option, env in [
        ("--host", "BRIDGE_HOST"),
        ("--port", "BRIDGE_PORT"),
        ("--broker", "BRIDGE_BROKER_URL"),
        ("--jwt-secret", "BRIDGE_JWT_SECRET"),
        ("--jwt-secret-file", "BRIDGE_JWT_SECRET_FILE"),
        ("--api-key", "BRIDGE_API_KEY"),
        ("--api-key-file", "BRIDGE_API_KEY_FILE"),
        ("--allowed-hosts", "BRIDGE_ALLOWED_HOSTS"),
        ("--max-connections-per-ip", "BRIDGE_MAX_CONNECTIONS_PER_IP"),
        ("--max-connections", "BRIDGE_MAX_CONNECTIONS"),
        ("--http-request-timeout", "BRIDGE_HTTP_REQUEST_TIMEOUT"),
        ("--http-idle-timeout", "BRIDGE_HTTP_IDLE_TIMEOUT"),
        ("--allow-anonymous", "BRIDGE_ALLOW_ANONYMOUS"),
        ("--history-size", "BRIDGE_HISTORY_SIZE"),
        ("--allowed-origins", "BRIDGE_ALLOWED_ORIGINS"),
        ("--instance", "BRIDGE_INSTANCE"),
        ("--compression", "BRIDGE_COMPRESSION"),
        ("--max-send-buffer", "BRIDGE_MAX_SEND_BUFFER"),
        ("--max-event-size", "BRIDGE_MAX_EVENT_SIZE"),
        ("--max-queued-bytes", "BRIDGE_MAX_QUEUED_BYTES"),
        ("--max-token-lifetime", "BRIDGE_MAX_TOKEN_LIFETIME"),
        ("--jwt-issuer", "BRIDGE_JWT_ISSUER"),
        ("--jwt-audience", "BRIDGE_JWT_AUDIENCE"),
        ("--public-reads", "BRIDGE_PUBLIC_READS"),
        ("--batch-window", "BRIDGE_BATCH_WINDOW"),
    ]:
        assert option in done.stdout
        assert env in done.stdout


async def test_secrets_come_from_files_and_only_flags_are_warned_of(tmp_path: Path) -> None:
    """Issue 14: ``--jwt-secret`` and ``--api-key`` showed in ps; files and variables do not."""
    secret_file, key_file = tmp_path / "jwt_secret", tmp_path / "api_key"
    secret_file.write_text(SECRET + "\n")  # as an editor or `echo` leaves it
    key_file.write_text("a-key-of-twenty-chars\n")
    served = Served(
        "--state-dir", str(tmp_path), "--jwt-secret-file", str(secret_file),
        env={"BRIDGE_API_KEY_FILE": str(key_file)},
    )  # fmt: skip
    served.args[served.args.index("--jwt-secret") : served.args.index("--jwt-secret") + 2] = []
    await served.start()
    try:
        async with client(served, token=token()):  # welcomed: signed with the file's secret
            pass
        body = b'{"type": "x:y", "data": {}}'
        keyed = {"X-API-Key": "a-key-of-twenty-chars"}
        post = "/api/dashboard/emit-event"
        assert (await request(served.port, "POST", post, body)).status == 401
        assert (await request(served.port, "POST", post, body, keyed)).status == 202
    finally:
        await served.kill()
    assert served.proc is not None
    assert served.proc.stderr is not None
    assert b"shows in ps" not in await served.proc.stderr.read()
    flagged = Served("--state-dir", str(tmp_path), "--api-key", "a-key-of-twenty-chars")
    await flagged.start()
    try:
        warnings = [await flagged.logged("warning:") for _ in range(2)]
    finally:
        await flagged.kill()
    assert "--jwt-secret on the command line shows in ps" in warnings[0]
    assert "set BRIDGE_API_KEY or --api-key-file instead" in warnings[1]


async def test_sigterm_closes_clients_with_1001_and_exits_0(tmp_path: Path) -> None:
    served = Served("--state-dir", str(tmp_path))
    await served.start()
    try:
        async with client(served, token=token()) as ws:
            started = time.monotonic()
            served.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as caught:
                await recv(ws, timeout=10)
            assert caught.value.rcvd is not None
            assert caught.value.rcvd.code == 1001
        assert await served.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        await served.kill()
