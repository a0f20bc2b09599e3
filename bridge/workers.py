"""``serve --workers N``: N bridge processes on one port, each a whole instance.

Each worker is a bridge of its own (its RabbitMQ queue, history and clients)
listening on the same port with ``SO_REUSEPORT``, so the kernel spreads new
connections over them. Every worker's queue gets every event, so a client
that reconnects to another worker resumes from that worker's history. The
parent only starts, watches and stops them: it holds no client and runs no
event loop, and a worker that dies is started again under the same name.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from bridge.config import Settings

__all__ = ["START_TIMEOUT", "STOP_TIMEOUT", "Worker", "reserve_port", "serve_workers"]

log = logging.getLogger("bridge.workers")

#: Seconds a worker has to listen after it is started.
START_TIMEOUT = 30.0
#: Seconds the workers have to stop after SIGTERM before they are killed: the
#: contract gives a stop 10 s.
STOP_TIMEOUT = 9.5
#: Seconds before a worker that died is started again; doubled, up to
#: :data:`MAX_RESTART_DELAY`, while workers keep dying within a minute of starting.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
_STABLE_AFTER = 60.0

#: Runs one worker's bridge until SIGTERM; it sends its port down the pipe once listening.
RunWorker = Callable[[Settings, Connection], None]

# prctl(2), to have the kernel stop a worker whose parent died.
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    """One worker process and what the parent knows of it."""

    number: int
    settings: Settings
    process: BaseProcess
    pipe: Connection
    started: float
    listening: bool = False


def reserve_port(host: str, port: int) -> tuple[int, socket.socket]:
    """The port the workers share, and a socket that holds it until they listen.

    For port 0 the OS picks one; the socket is bound, never listening, so it
    takes no connection from the workers.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    if port:
        # SO_REUSEPORT would join whatever already listens there as this user (an
        # earlier bridge still running) and share its connections: refuse instead.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((host, port))
    except OSError:
        holder.close()
        raise
    return int(holder.getsockname()[1]), holder


def serve_workers(
    settings: Settings, count: int, run_worker: RunWorker, announce: Callable[[int], None]
) -> int:
    """Run ``count`` workers of ``settings`` until SIGTERM or SIGINT; the exit status.

    Worker ``n`` is instance ``<instance>-<n>``. ``announce`` is called with the
    port once every worker listens. If one cannot start, the others are
    stopped and 1 is returned.
    """
    port, holder = reserve_port(settings.host, settings.port)
    pool = _Pool(replace(settings, port=port, reuse_port=True), run_worker)
    previous = {signum: signal.signal(signum, pool.on_signal) for signum in _STOP_SIGNALS}
    try:
        if not pool.start(count):
            return 1
        holder.close()
        if not pool.stopping:
            announce(port)
        pool.watch()
        return 0
    finally:
        holder.close()
        pool.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _worker_main(run_worker: RunWorker, settings: Settings, pipe: Connection, parent: int) -> None:
    # The parent's handlers came with the fork; the worker's bridge sets its own.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    # A parent killed outright (SIGKILL, OOM) cannot stop its workers: the kernel
    # sends them SIGTERM instead, so none is left holding the port and its queue.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return  # it died before prctl took effect
    run_worker(settings, pipe)


def _ended(exitcode: int | None) -> str:
    """How a worker ended, for people: multiprocessing gives -N for signal N."""
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


class _Pool:
    def __init__(self, settings: Settings, run_worker: RunWorker) -> None:
        self._settings = settings
        self._run_worker = run_worker
        # Forked, not spawned: a worker starts from the settings as they are,
        # catalog included, without importing everything again.
        self._context = multiprocessing.get_context("fork")
        self._workers: list[Worker] = []
        self.stopping = False
        self._delay = RESTART_DELAY
        # A signal wakes the parent's wait() through this pair.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_writer.setblocking(False)

    def _spawn(self, number: int) -> Worker:
        settings = replace(self._settings, instance=f"{self._settings.instance}-{number}")
        ours, theirs = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(self._run_worker, settings, theirs, os.getpid()),
            name=f"worker {number}",
        )
        process.start()
        theirs.close()
        return Worker(number, settings, process, ours, time.monotonic())

    def start(self, count: int) -> bool:
        """Start ``count`` workers and wait until each listens; False (said in the log)
        if one does not."""
        self._workers = [self._spawn(number) for number in range(1, count + 1)]
        deadline = time.monotonic() + START_TIMEOUT
        waiting = {w.pipe: w for w in self._workers}
        while waiting and not self.stopping:
            ready = wait(list(waiting), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                names = ", ".join(w.settings.instance for w in waiting.values())
                log.error("workers %s did not listen within %.0f s", names, START_TIMEOUT)
                return False
            for pipe in ready:
                assert isinstance(pipe, Connection)
                worker = waiting.pop(pipe)
                if not self._heard(worker):
                    worker.process.join(STOP_TIMEOUT)
                    log.error(
                        "worker %d (instance %s) %s before listening; its error is above",
                        worker.number,
                        worker.settings.instance,
                        _ended(worker.process.exitcode),
                    )
                    return False
        return True

    def _heard(self, worker: Worker) -> bool:
        try:
            worker.pipe.recv()
        except EOFError:
            return False
        worker.listening = True
        return True

    def watch(self) -> None:
        """Restart workers that die until a signal asks to stop."""
        while not self.stopping:
            sentinels = {w.process.sentinel: w for w in self._workers}
            ready = wait([*sentinels, self._wake_reader])
            for item in ready:
                if isinstance(item, int) and not self.stopping:
                    self._restart(sentinels[item])

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Stop: the handler of SIGTERM and SIGINT in the parent."""
        self.stopping = True
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            self._wake_writer.send(b"\0")
        log.info("stopping %d workers (%s)", len(self._workers), signal.Signals(signum).name)

    def _restart(self, dead: Worker) -> None:
        dead.process.join(STOP_TIMEOUT)  # its sentinel may close before it is reaped
        lived = time.monotonic() - dead.started
        self._delay = (
            RESTART_DELAY if lived > _STABLE_AFTER else min(MAX_RESTART_DELAY, self._delay * 2)
        )
        log.warning(
            "worker %d (instance %s, pid %s) %s after %.0f s; starting it again in %.1f s. "
            "Its clients reconnect to the other workers and resume there.",
            dead.number,
            dead.settings.instance,
            dead.process.pid,
            _ended(dead.process.exitcode),
            lived,
            self._delay,
        )
        dead.pipe.close()
        # Waited on the wake-up socket, so that a stop meanwhile is not held up.
        if wait([self._wake_reader], timeout=self._delay) or self.stopping:
            return
        fresh = self._spawn(dead.number)
        self._workers[self._workers.index(dead)] = fresh

    def stop(self) -> None:
        """SIGTERM every worker, wait for them, kill what is left."""
        alive = [w for w in self._workers if w.process.is_alive()]
        for worker in alive:
            if worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in alive:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("worker %d did not stop in time; killing it", worker.number)
                worker.process.kill()
                worker.process.join()
        self._wake_reader.close()
        self._wake_writer.close()
