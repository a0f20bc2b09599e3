"""A real three-node RabbitMQ cluster beside the machine's own node, for tests.

Failover, quorum queues and rolling restarts can only be tested against a
cluster; the machine's default node (``rabbit@localhost``, port 5672) is never
touched. Each node is a ``rabbitmq-server`` of its own, run as the ``rabbitmq``
user (so it shares the default node's Erlang cookie) with its own name, ports,
config, plugins file and data under one temporary dir. Nodes 2 and 3 join
node 1 once the three have booted side by side.

A test module gets the run's one cluster, started on first use and stopped at
the end of the run, by loading this module as a plugin (``tests/conftest.py``
does not)::

    from tests.support.cluster import Cluster

    pytest_plugins = ["tests.support.cluster"]

    @pytest.mark.timeout(180)  # the first test also waits for the cluster to boot
    def test_failover(rabbit_cluster: Cluster) -> None:
        url = rabbit_cluster.url(rabbit_cluster.add_vhost("failover"))

or a cluster of its own, with a fixture of its own::

    @pytest.fixture(scope="module")
    def cluster() -> Iterator[Cluster]:
        with started_cluster() as cluster:
            yield cluster

By hand, the same cluster: ``python -m tests.support.cluster start|status|stop``.

Nodes run as ``runuser -u rabbitmq`` children of a new session: Ctrl-C of the
test run does not reach them, and :meth:`Cluster.close` stops them whatever the
outcome. A run that was killed leaves its nodes running; they collide with no
later run (names and ports are a run's own) and the next :func:`started_cluster`
stops them and removes their dir.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pwd
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import pytest

__all__ = ["Cluster", "ClusterError", "Node", "rabbit_cluster", "started_cluster", "sweep_stale"]

#: The host part of every node's name: the default node's (rabbit@localhost).
HOST = "localhost"
#: How long a node may take to boot (5 s alone, 15 s three at once here) or to rejoin its cluster.
BOOT_TIMEOUT = 90.0
#: How long any other rabbitmqctl command may take.
CTL_TIMEOUT = 60.0

_USER = "rabbitmq"
_DIR_PREFIX = "eb-cluster-"
#: An Erlang user flag (erl keeps it for init:get_argument/1 and nothing reads it):
#: the VM's command line names no node otherwise, since RabbitMQ starts distribution
#: itself from RABBITMQ_NODENAME, and this is how `pgrep -f NAME` finds a node.
_MARKER = "-eb_test_node"
_MANUAL = "manual"
#: As in the default node's rabbitmq-env.conf: distribution listens on 127.0.0.1 only.
_ERL_FLAGS = "-kernel inet_dist_use_interface {127,0,0,1}"
#: Ports no node of ours may take: epmd, the default node's AMQP, management and
#: distribution ports, and the range rabbitmqctl's own VM listens on.
_RESERVED = frozenset({4369, 5672, 15672, 25672, *range(35672, 35683)})


class ClusterError(RuntimeError):
    """A node did not do what it was told; the message has the command's output or the log's tail."""


class Node:
    """One node of a :class:`Cluster`: its own name, ports, config and data under the cluster's dir."""

    def __init__(self, cluster: Cluster, name: str, port: int, dist_port: int) -> None:
        self.cluster = cluster
        self.name = name
        self.port = port
        self.dist_port = dist_port
        #: Whether its app runs, as far as the calls made through this object go: a node
        #: that (re)starts waits until every running node sees it again.
        self.running = False
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Node({self.name!r}, port={self.port})"

    @property
    def dir(self) -> Path:
        return self.cluster.dir / self.name.split("@")[0]

    @property
    def pid_file(self) -> Path:
        return self.dir / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / f"{self.name}.log"

    @property
    def env_file(self) -> Path:
        """Its rabbitmq-env.conf: ``RABBITMQ_CONF_ENV_FILE=<this> rabbitmq-server`` is the node."""
        return self.dir / "rabbitmq-env.conf"

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """``rabbitmqctl -n NAME -q ARGS``'s output; a :class:`ClusterError` if it fails."""
        return _run(_as_rabbitmq([_rabbitmqctl(), "-n", self.name, "-q", *args]), timeout=timeout)

    def pid(self) -> int | None:
        """The OS pid of its Erlang VM (beam.smp) from its pid file, or None if that is not running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid in _vm_pids(self.name) else None

    def stop_app(self) -> None:
        """Stop RabbitMQ on it, leaving its VM up: clients are refused, the cluster sees it leave."""
        self.running = False
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start RabbitMQ on it again and wait until it is back in the cluster."""
        self.ctl("start_app")
        self.running = True
        self.cluster.await_joined(self)

    def kill(self) -> None:
        """SIGKILL its Erlang VM, as a crash or an OOM kill would; nothing else of it gets a say."""
        self.running = False
        pid = self.pid()
        if pid is not None:
            _kill(pid)
        self._reap()

    def stop(self) -> None:
        """Stop the whole node gracefully (``rabbitmqctl stop``), as a rolling restart does."""
        self.running = False
        if self.pid() is not None:
            # With the pid file, stop returns once the VM has exited, not when it was told to.
            self.ctl("stop", str(self.pid_file), timeout=BOOT_TIMEOUT)
        self._reap()

    def start(self) -> None:
        """Start it after :meth:`kill` or :meth:`stop` (or :meth:`stop_app`) and wait until it
        runs and is back in the cluster: its data remembers the cluster, it rejoins by itself."""
        if self.pid() is not None:
            self.start_app()
            return
        self._launch()
        self._await_boot()
        self.running = True
        self.cluster.await_joined(self)

    def _launch(self) -> None:
        # A killed VM leaves its pid file behind; `rabbitmqctl wait` would watch that dead pid.
        self.pid_file.unlink(missing_ok=True)
        self._reap()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        # Set, the server script would run the VM as a systemd service's.
        env.pop("NOTIFY_SOCKET", None)
        env.update({f"RABBITMQ_{k}": v for k, v in self._settings().items()})
        env.update(
            RABBITMQ_CONF_ENV_FILE=str(self.env_file),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_FLAGS=_ERL_FLAGS,
            HOME=pwd.getpwnam(_USER).pw_dir,
        )
        with (self.dir / "stdout.log").open("ab") as out:
            self._process = subprocess.Popen(
                _as_rabbitmq([_server_script()]),
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Out of the test run's process group: Ctrl-C is for the run; close() stops the node.
                start_new_session=True,
            )

    def _await_boot(self) -> None:
        # `rabbitmqctl wait` waits for the pid file, then for the app; it never notices
        # a VM that dies before writing that file: wait for whichever ends first.
        argv = _as_rabbitmq([_rabbitmqctl(), "-n", self.name, "-q", "wait", str(self.pid_file),
                             "--timeout", str(int(BOOT_TIMEOUT))])  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as waiter:
            node = [self._process.pid] if self._process is not None else []
            ended = _first_to_end([waiter.pid, *node], BOOT_TIMEOUT + 10)
            if ended != waiter.pid:
                waiter.kill()
                why = "did not boot in time" if ended is None else "exited while it booted"
                raise ClusterError(f"{self.name} {why}:\n{self._tail()}")
            _, problem = waiter.communicate()
            if waiter.returncode != 0:
                raise ClusterError(
                    f"{self.name} did not boot: {problem.decode().strip()}\n{self._tail()}"
                )

    def _reap(self) -> None:
        # The runuser and server script above the VM exit with it.
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            self._process = None

    def _settings(self) -> dict[str, str]:
        """Its RABBITMQ_* variables, without the prefix: every file and port of its own."""
        return {
            "NODENAME": self.name,
            "DIST_PORT": str(self.dist_port),
            "CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            # Both default to files under /etc/rabbitmq, the default node's.
            "CONFIG_FILES": str(self.dir / "conf.d"),
            "ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            # The default node's enables the management plugin, which would want port 15672.
            "ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            # Feature flags, plugins-expand and quorum dirs default to places under this one.
            "MNESIA_BASE": str(self.dir / "mnesia"),
            "LOG_BASE": str(self.dir / "log"),
            "PID_FILE": str(self.pid_file),
            "SERVER_ADDITIONAL_ERL_ARGS": f"{_MARKER} {self.name}",
        }

    def _write_files(self) -> None:
        self.dir.mkdir()
        (self.dir / "conf.d").mkdir()
        (self.dir / "rabbitmq.conf").write_text(
            # Only on 127.0.0.1, where guest may log in, as on the default node.
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            # Otherwise each node names the cluster after itself (with the FQDN).
            f"cluster_name = {self.cluster.dir.name}\n"
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        lines = [f"# {self.name}, written by tests/support/cluster.py"]
        lines += [f'{key}="{value}"' for key, value in self._settings().items()]
        lines += ["ERL_EPMD_ADDRESS=127.0.0.1", f'export ERL_FLAGS="{_ERL_FLAGS}"']
        self.env_file.write_text("\n".join(lines) + "\n")

    def _tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.dir / "stdout.log", self.log_file):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path}\n" + "\n".join(path.read_text().splitlines()[-lines:]))
        return "\n".join(parts)


class Cluster:
    """Three (``size``) RabbitMQ nodes of one cluster, each on its own port of 127.0.0.1."""

    def __init__(self, directory: Path, nodes: Iterable[tuple[str, int, int]]) -> None:
        self.dir = directory
        self.nodes = [Node(self, name, port, dist_port) for name, port, dist_port in nodes]

    @classmethod
    def create(cls, size: int = 3, *, host: str = HOST, manual: bool = False) -> Self:
        """A new cluster's dir and plan, its nodes not started; ``manual`` if no test process owns it."""
        run = uuid.uuid4().hex[:6]
        ports = _free_ports(2 * size)
        directory = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{run}-"))
        cluster = cls(
            directory,
            [
                (f"eb-test-{run}-{n}@{host}", ports[2 * n - 2], ports[2 * n - 1])
                for n in range(1, size + 1)
            ],
        )
        owner = _MANUAL if manual else _process_id(os.getpid())
        (directory / "cluster.json").write_text(
            json.dumps(
                {
                    "owner": owner,
                    "nodes": [
                        {"name": n.name, "port": n.port, "dist_port": n.dist_port}
                        for n in cluster.nodes
                    ],
                }
            )
        )
        return cluster

    @classmethod
    def load(cls, directory: Path) -> Self:
        """The cluster :meth:`create` put in ``directory`` (for the operator commands)."""
        plan = json.loads((directory / "cluster.json").read_text())
        cluster = cls(directory, [(n["name"], n["port"], n["dist_port"]) for n in plan["nodes"]])
        for node in cluster.nodes:
            node.running = node.pid() is not None
        return cluster

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Boot the nodes side by side, then join nodes 2.. to node 1."""
        for node in self.nodes:
            node._write_files()
        _chown(self.dir)
        for node in self.nodes:
            node._launch()
        _each(Node._await_boot, self.nodes)
        seed = self.nodes[0]
        seed.running = True
        # Each join changes the cluster's schema: one at a time.
        joining = threading.Lock()

        def join(node: Node) -> None:
            node.ctl("stop_app")
            node.ctl("reset")
            with joining:
                node.ctl("join_cluster", seed.name)
            node.ctl("start_app")
            node.running = True

        _each(join, self.nodes[1:])
        for node in self.nodes:
            self.await_joined(node)

    def close(self) -> None:
        """Stop every node (gracefully, then SIGKILL whatever is left) and remove the dir."""
        try:
            _each(_stop_quietly, self.nodes)
        finally:
            for node in self.nodes:
                node.running = False
                for pid in _vm_pids(node.name):
                    _kill(pid)
                node._reap()
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, vhost: str, nodes: Sequence[Node] | None = None) -> str:
        """The nodes' URLs (all by default) as kombu's failover list: ``amqp://…;amqp://…``."""
        return ";".join(node.url(vhost) for node in (self.nodes if nodes is None else nodes))

    def add_vhost(self, name: str) -> str:
        """Create vhost ``name`` for guest on the cluster; returns the name."""
        node = self._a_running_node()
        node.ctl("add_vhost", name)
        node.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return name

    def running_nodes(self, via: Node | None = None) -> list[str]:
        """The names of the nodes whose app runs, as ``via`` (any running node) sees it."""
        status = (via or self._a_running_node()).ctl("cluster_status", "--formatter", "json")
        return list(json.loads(status)["running_nodes"])

    def leader(self, vhost: str, queue: str) -> Node:
        """The node that leads quorum queue ``queue`` of ``vhost``."""
        name = self._queue(vhost, queue)["leader"]
        return next(node for node in self.nodes if node.name == name)

    def members(self, vhost: str, queue: str) -> list[str]:
        """The names of the nodes with a replica of quorum queue ``queue`` of ``vhost``."""
        return list(self._queue(vhost, queue)["members"])

    def await_quorum_plus_one(self, node: Node) -> None:
        """Wait until no quorum queue would lose its quorum if ``node`` stopped: what an
        operator checks before each step of a rolling restart."""
        upgrade = shutil.which("rabbitmq-upgrade") or "rabbitmq-upgrade"
        _run(_as_rabbitmq([upgrade, "-n", node.name, "-q", "await_online_quorum_plus_one"]),
             timeout=BOOT_TIMEOUT)  # fmt: skip

    def await_joined(self, node: Node) -> None:
        """Wait until ``node`` sees every node that runs (itself included) as running."""
        count = sum(n.running for n in self.nodes)
        try:
            node.ctl("await_online_nodes", str(count), timeout=BOOT_TIMEOUT)
        except ClusterError as error:
            raise ClusterError(f"{node.name} is not back in the cluster: {error}") from None

    def _queue(self, vhost: str, queue: str) -> dict[str, Any]:
        listing = self._a_running_node().ctl(
            "list_queues",
            "-p",
            vhost,
            "name",
            "type",
            "leader",
            "members",
            "--formatter",
            "json",
        )
        for entry in json.loads(listing):
            if entry["name"] == queue:
                if entry["type"] != "quorum":
                    raise ClusterError(
                        f"{queue} of {vhost} is a {entry['type']} queue, not a quorum one"
                    )
                return dict(entry)
        raise ClusterError(f"no queue {queue} in {vhost}")

    def _a_running_node(self) -> Node:
        for node in self.nodes:
            if node.running:
                return node
        raise ClusterError("no node of the cluster runs")


@contextlib.contextmanager
def started_cluster(size: int = 3, *, host: str = HOST) -> Iterator[Cluster]:
    """A started cluster of ``size`` nodes, stopped and removed on exit whatever happened."""
    sweep_stale()
    cluster = Cluster.create(size, host=host)
    with cluster:
        cluster.start()
        yield cluster


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[Cluster]:
    """The run's three-node cluster: booting one takes about 20 s, so tests share it."""
    with started_cluster() as cluster:
        yield cluster


def sweep_stale() -> None:
    """Stop and remove the clusters of test processes that are gone (killed runs).

    Clusters started by hand (``python -m tests.support.cluster start``) are left alone.
    """
    for directory in _cluster_dirs():
        try:
            owner = json.loads((directory / "cluster.json").read_text())["owner"]
        except (OSError, ValueError, KeyError):
            owner = None
        if owner == _MANUAL or (owner is not None and _process_id(int(owner.split()[0])) == owner):
            continue
        if owner is None:
            # A run killed before it wrote its plan started no node; a young one may be
            # another run's, about to write it.
            if time.time() - directory.stat().st_mtime > 3600:
                shutil.rmtree(directory, ignore_errors=True)
        else:
            Cluster.load(directory).close()


def _run(argv: Sequence[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{' '.join(argv)} did not finish in {timeout} s") from None
    if done.returncode != 0:
        output = (done.stderr.strip() + "\n" + done.stdout.strip()).strip()
        raise ClusterError(f"{' '.join(argv)} exited with {done.returncode}: {output}")
    return done.stdout


def _as_rabbitmq(argv: Sequence[str]) -> list[str]:
    # As the rabbitmq user, nodes and rabbitmqctl share the cookie in its home,
    # /var/lib/rabbitmq/.erlang.cookie, with the default node.
    uid = pwd.getpwnam(_USER).pw_uid
    if os.geteuid() == uid:
        return list(argv)
    if os.geteuid() == 0:
        return ["runuser", "-u", _USER, "--", *argv]
    raise ClusterError(f"a RabbitMQ node runs as {_USER}: run the tests as root or {_USER}")


def _rabbitmqctl() -> str:
    found = shutil.which("rabbitmqctl")
    if found is None:
        raise ClusterError("rabbitmqctl is not on PATH: RabbitMQ is not installed here")
    return found


def _server_script() -> str:
    # Debian's /usr/sbin/rabbitmq-server, as the rabbitmq user, sends the output to
    # /var/log/rabbitmq/startup_log: the default node's file. The script it wraps does not.
    packaged = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if packaged.exists():
        return str(packaged)
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise ClusterError("rabbitmq-server is not on PATH: RabbitMQ is not installed here")
    return found


def _chown(root: Path) -> None:
    user = pwd.getpwnam(_USER)
    if os.geteuid() != 0:
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


def _free_ports(count: int) -> list[int]:
    """``count`` ports free on 127.0.0.1, below the ephemeral range.

    Not port 0's: a port the kernel hands out is one it may also give a client's
    outgoing connection while a killed node is down, and the node must get its
    port back when it restarts.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    held: list[socket.socket] = []
    try:
        for _ in range(1000):
            if len(held) == count:
                break
            port = random.randrange(10_000, low)
            if port in _RESERVED or any(s.getsockname()[1] == port for s in held):
                continue
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            held.append(probe)
        else:
            raise ClusterError(f"found no {count} free ports below {low}")
        return [s.getsockname()[1] for s in held]
    finally:
        for probe in held:
            probe.close()


def _vm_pids(name: str) -> list[int]:
    """The pids of the live Erlang VMs of node ``name`` (by the marker on their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        marked = any(
            a == _MARKER.encode() and b == name.encode() for a, b in itertools.pairwise(argv)
        )
        if marked and state != "Z" and argv[0].endswith(b"beam.smp"):
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGKILL)
        # A pidfd turns readable once its process has ended (a zombie has).
        if not _ended([handle], 10):
            raise ClusterError(f"pid {pid} outlived SIGKILL for 10 s")
    finally:
        os.close(handle)


def _ended(handles: list[int], timeout: float) -> list[int]:
    """The pidfds among ``handles`` whose process ended within ``timeout`` seconds.

    poll(), not select(): a test process holding a thousand sockets gets pidfds
    numbered past select()'s limit of 1,024.
    """
    poller = select.poll()
    for handle in handles:
        poller.register(handle, select.POLLIN)
    return [fd for fd, _ in poller.poll(timeout * 1000)]


def _first_to_end(pids: Sequence[int], timeout: float) -> int | None:
    """The first of ``pids`` to end within ``timeout`` seconds, or None."""
    handles = {os.pidfd_open(pid): pid for pid in pids}
    try:
        ready = _ended(list(handles), timeout)
        return handles[ready[0]] if ready else None
    finally:
        for handle in handles:
            os.close(handle)


def _stop_quietly(node: Node) -> None:
    # Whatever does not stop here is killed next.
    with contextlib.suppress(ClusterError):
        node.stop()


def _each(action: Callable[[Node], None], nodes: Sequence[Node]) -> None:
    """``action`` on every node at once; the first error is raised once all have finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        futures = [pool.submit(action, node) for node in nodes]
    for future in futures:
        future.result()


def _process_id(pid: int) -> str | None:
    """``"PID START"``: a pid with its start time, which a reused pid does not have."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{pid} {start}"


def _cluster_dirs() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"))


def _manual_clusters() -> list[Cluster]:
    clusters = []
    for directory in _cluster_dirs():
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads((directory / "cluster.json").read_text())["owner"] == _MANUAL:
                clusters.append(Cluster.load(directory))
    return clusters


def main(argv: Sequence[str] | None = None) -> int:
    """``start``, ``status`` or ``stop`` clusters by hand, as the tests start them."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.cluster", description=main.__doc__
    )
    parser.add_argument("command", choices=["start", "status", "stop"])
    parser.add_argument("--size", type=int, default=3, help="nodes of a new cluster (start)")
    parser.add_argument(
        "dirs", nargs="*", type=Path, help="clusters to stop (default: every one started by hand)"
    )
    args = parser.parse_args(argv)
    if args.command == "start":
        sweep_stale()
        began = time.monotonic()
        cluster = Cluster.create(args.size, manual=True)
        try:
            cluster.start()
        except BaseException:
            cluster.close()
            raise
        print(f"started in {time.monotonic() - began:.1f} s: {cluster.dir}")
        _print(cluster)
    elif args.command == "status":
        for cluster in _manual_clusters():
            _print(cluster)
    else:
        for cluster in [Cluster.load(d) for d in args.dirs] or _manual_clusters():
            cluster.close()
            print(f"stopped {cluster.dir}")
    return 0


def _print(cluster: Cluster) -> None:
    print(cluster.dir)
    for node in cluster.nodes:
        pid = node.pid()
        print(
            f"  {node.name}  amqp 127.0.0.1:{node.port}  dist {node.dist_port}  pid {pid or 'not running'}"
        )
    with contextlib.suppress(ClusterError):
        print(f"  running: {', '.join(sorted(cluster.running_nodes()))}")
    print(f"  url (vhost /): {cluster.url('/')}")


if __name__ == "__main__":
    sys.exit(main())
