"""Presence as data, without RabbitMQ: snapshots read from the network, added up, forgotten."""

from __future__ import annotations

import logging

import pytest

from bridge.presence import Presence, Snapshot, summary


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def snapshot(instance: str, interval: float = 5.0, **fields: object) -> bytes:
    return (
        Snapshot.model_validate({"instance": instance, "interval": interval, **fields})
        .model_dump_json()
        .encode()
    )


def test_snapshots_of_every_instance_add_up_by_user_role_and_channel() -> None:
    one = Snapshot(
        instance="a",
        interval=5,
        users={"ana": 2, "": 1},
        roles={"admin": {"ana": 2}},
        channels={"order:1": {"ana": 1}},
    )
    two = Snapshot(instance="b", interval=5, users={"bob": 1}, channels={"order:1": {"bob": 1}})
    total = summary([one, two])
    assert (total["connections"], total["anonymous"], total["users"]) == (4, 1, ["ana", "bob"])
    assert total["roles"]["admin"]["connections"] == 2
    assert total["channels"]["order:1"]["users"] == ["ana", "bob"]
    assert summary([one, two], channel="order:1")["connections"] == 2


def test_user_ids_listed_are_bounded_and_say_so() -> None:
    many = Snapshot(instance="a", interval=5, users={f"u{n}": 1 for n in range(5)})
    total = summary([many], max_users=3)
    assert (total["connections"], len(total["users"]), total["truncated"]) == (5, 3, True)


def test_an_instance_silent_for_three_intervals_is_forgotten() -> None:
    clock = Clock()
    presence = Presence("here", clock=clock)
    presence.receive(snapshot("there", users={"ana": 1}))
    clock.now = 14.9
    assert [s.instance for s in presence.others()] == ["there"]
    clock.now = 15.1
    assert presence.others() == []


def test_its_own_snapshot_echoed_back_is_ignored() -> None:
    presence = Presence("here")
    assert presence.receive(snapshot("here")) is None
    assert presence.others() == []


def test_instances_kept_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    presence = Presence("here", max_instances=2)
    for name in ("a", "b", "c"):
        presence.receive(snapshot(name))
    assert sorted(s.instance for s in presence.others()) == ["a", "b"]
    assert "dropped" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"instance": "x", "interval": 0}',
        b'{"instance": "x", "interval": 5, "users": {"a": -1}}',
    ],
    ids=["not JSON", "empty", "no interval", "a negative count"],
)
def test_a_message_that_is_not_a_snapshot_is_dropped_with_a_warning(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.presence")
    presence = Presence("here")
    assert presence.receive(body) is None
    assert presence.others() == []
    assert "presence message dropped" in caplog.text
