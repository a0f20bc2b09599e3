"""The three-node cluster of tests/support/cluster.py: the other cluster tests rely on it.

One test, so that the cluster boots once (about 20 s on this machine): it forms one
cluster, keeps a quorum queue usable while a node is down or was killed, and leaves
no node behind.
"""

from __future__ import annotations

import subprocess
import uuid
from typing import cast

import amqp
import pytest
from kombu import Connection

from tests.support.cluster import Cluster, Node, started_cluster

QUEUE = "smoke"


def vms_of(name: str) -> list[str]:
    """What ``pgrep -f`` finds of node ``name``: its VM has the name on its command line."""
    done = subprocess.run(["pgrep", "-f", name], capture_output=True, text=True, check=False)
    return done.stdout.split()


def round_trip(cluster: Cluster, vhost: str, nodes: list[Node], body: bytes) -> int:
    """Publish ``body`` (confirmed) to the queue through the first of ``nodes`` that
    answers and get it back; returns the port of the node that served."""
    url = cluster.url(vhost, nodes)
    with Connection(url, connect_timeout=5, transport_options={"confirm_publish": True}) as client:
        client.connect()
        channel = cast(amqp.Channel, client.default_channel)
        channel.basic_publish(amqp.Message(body, delivery_mode=2), exchange="", routing_key=QUEUE)
        got = channel.basic_get(queue=QUEUE, no_ack=True)
        assert got is not None
        assert got.body == body
        assert client.port is not None
        return client.port


@pytest.mark.timeout(150)
def test_three_nodes_serve_a_quorum_queue_through_a_node_failure_and_leave_nothing() -> None:
    with started_cluster() as cluster:
        names = sorted(node.name for node in cluster.nodes)
        one, two, three = cluster.nodes
        assert sorted(cluster.running_nodes()) == names
        for node in cluster.nodes:
            assert vms_of(node.name) == [str(node.pid())]

        vhost = cluster.add_vhost(f"smoke-{uuid.uuid4().hex[:8]}")
        with Connection(one.url(vhost)) as client:
            cast(amqp.Channel, client.default_channel).queue_declare(
                queue=QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
            )
        assert sorted(cluster.members(vhost, QUEUE)) == names
        assert cluster.leader(vhost, QUEUE) in cluster.nodes

        two.stop_app()
        assert sorted(cluster.running_nodes()) == sorted([one.name, three.name])
        # The stopped node first in the failover list: the client must move on to node 3.
        assert round_trip(cluster, vhost, [two, three], b"while two is down") == three.port
        assert cluster.leader(vhost, QUEUE) is not two
        two.start_app()
        assert sorted(cluster.running_nodes()) == names

        killed = three.pid()
        three.kill()
        assert vms_of(three.name) == []
        assert round_trip(cluster, vhost, [one], b"while three is dead") == one.port
        three.start()
        assert three.pid() not in (None, killed)
        assert sorted(cluster.running_nodes(via=three)) == names
        assert sorted(cluster.members(vhost, QUEUE)) == names

    for name in names:
        assert vms_of(name) == []
    assert not cluster.dir.exists()
