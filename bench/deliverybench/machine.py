"""The machine: cores, CPU time, open-file limit, versions, the RabbitMQ vhost."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import websockets

from .constants import BENCH_PACKAGES, BUSY, RABBITMQCTL_TIMEOUT, REDIS_URL, VHOST_PREFIX


def pin_to_core(core: int) -> None:
    if core >= (os.cpu_count() or 1):
        sys.exit(f"delivery: needs at least {core + 1} cores")
    os.sched_setaffinity(0, {core})


def raise_open_files(clients: int) -> None:
    """Each client is one socket here and one in the server, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        sys.exit(f"delivery: {clients} clients need {wanted} open files; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class ServerGone(RuntimeError):
    """The server under test exited during the benchmark."""


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ServerGone(f"process {pid} exited") from None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live children of ``pid``, from every thread of it (``/proc/PID/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and of its children, for ``serve --workers``, whose parent
    only supervises: the workers' own time (live ones) plus cutime + cstime (those that
    exited and were waited for, e.g. a worker restarted meanwhile)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ServerGone(f"process {pid} exited") from None
    fields = stat[stat.rindex(")") + 2 :].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in children(pid):
        with contextlib.suppress(ServerGone):  # exited between the two reads: in cutime next time
            total += process_cpu_seconds(child)
    return total


def core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]  # user … steal; guest is inside user
            idle = ticks[3] + ticks[4]
            cores[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return cores


def core_load(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> list[float]:
    """Percent busy of each core between two readings."""
    loads = []
    for core in sorted(after):
        busy = after[core][0] - before[core][0]
        total = after[core][1] - before[core][1]
        loads.append(100.0 * busy / total if total else 0.0)
    return loads


def rabbitmqctl(*args: str) -> str:
    path = shutil.which("rabbitmqctl")
    if path is None:
        sys.exit("delivery: rabbitmqctl is not on the PATH; it makes the benchmark's vhost")
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [path, *args], capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT, check=True
    )
    return done.stdout.strip()


def versions() -> str:
    try:
        rabbit = rabbitmqctl("version")
    except (subprocess.SubprocessError, OSError) as exc:
        rabbit = f"unknown ({exc})"
    return (
        f"Python {platform.python_version()}, websockets {websockets.__version__}, "
        f"aio-pika {aio_pika.__version__}, RabbitMQ {rabbit}, "
        f"{os.cpu_count()} cores, Linux {platform.release()}\n"
        f"baselines: {', '.join(_package_versions())}"
    )


def _package_versions() -> list[str]:
    """The baselines' packages (the bench group) and runtimes, where installed."""
    found = []
    for name in BENCH_PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    node = shutil.which("node")
    if node is not None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            done = subprocess.run(  # noqa: S603 - fixed arguments
                [node, "--version"], capture_output=True, text=True, timeout=10, check=True
            )
            found.append(f"node {done.stdout.strip()}")
    with contextlib.suppress(Exception):  # no Redis, or no redis package: not measured either
        found.append(f"Redis server {asyncio.run(_redis_version(REDIS_URL))}")
    return found


def background_load(seconds: float = 1.0) -> str:
    """The cores' load before the benchmark starts: others may be using this machine."""
    before = core_times()
    time.sleep(seconds)
    loads = core_load(before, core_times())
    text = "load before the run: " + ", ".join(f"core{i} {v:.0f} %" for i, v in enumerate(loads))
    if max(loads) > BUSY:
        text += " (BUSY: other processes share the cores; expect noisy numbers)"
    return text


async def _redis_version(url: str) -> str:
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with the bench group

    client = aioredis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        return str((await client.info("server"))["redis_version"])
    finally:
        await client.aclose()


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost that guest may use, deleted afterwards."""
    name = VHOST_PREFIX + uuid.uuid4().hex[:12]
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        try:
            rabbitmqctl("delete_vhost", name)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"delivery: could not delete vhost {name}: {exc}", file=sys.stderr)
