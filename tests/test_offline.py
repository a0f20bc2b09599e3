"""A user offline for ten minutes, on the real RabbitMQ, gets the notifications sent meanwhile.

Issue 18: while they are away, 50,000 other events pass (broadcasts, other users'
notifications, another role's events), 500 times the history of one stream; the
20 notifications addressed to them arrive on reconnect, once each and in order,
with ``bridge:reset`` saying that the broadcasts they missed are gone.

It takes ten minutes of real time, as the issue asks: the history's age is what
is tested. ``EVENT_BRIDGE_OFFLINE_SECONDS`` shortens it when trying things out.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from bridge.auth import Authenticator
from schemas import Event, Everyone, Role, User
from schemas.audience import Audience
from schemas.topology import routing_key
from tests.support.bridges import SECRET, recv_json
from tests.support.load import BridgeProcess, Publisher

OFFLINE = float(os.environ.get("EVENT_BRIDGE_OFFLINE_SECONDS", "600"))
OTHERS, NOTIFICATIONS = 50_000, 20


def other(n: int) -> Audience:
    """Broadcasts mostly, some for other users and another role."""
    match n % 10:
        case 0:
            return User(user=f"someone-{n % 977}")
        case 1:
            return Role(role="proveedor")
        case _:
            return Everyone()


@pytest.mark.timeout(OFFLINE + 300)
async def test_a_user_away_ten_minutes_gets_the_20_notifications_sent_meanwhile(
    own_amqp_url: str, tmp_path: Path
) -> None:
    token = Authenticator(SECRET).issue("ana", ["cliente"], ttl=timedelta(hours=1))
    total = OTHERS + NOTIFICATIONS
    # Notification k goes out after event spacing * k: spread over the whole absence.
    spacing = total // NOTIFICATIONS
    notifications = []
    async with BridgeProcess(own_amqp_url, "offline", tmp_path) as bridge:
        await bridge.logged("connected to", 15)
        publisher = Publisher(own_amqp_url)
        try:
            url = f"ws://127.0.0.1:{bridge.port}/ws?token={token}"
            async with connect(url) as ws:
                assert (await recv_json(ws))["type"] == "bridge:welcome"
                seen = Event.untyped("news:posted", {"n": -1}, id="before-leaving")
                await publisher.send(seen.to_json(), routing_key(seen), seen.id)
                assert (await recv_json(ws))["id"] == "before-leaving"
            # Away: the events go out at a steady pace over the whole absence.
            began = asyncio.get_running_loop().time()
            for n in range(total):
                delay = began + n * OFFLINE / total - asyncio.get_running_loop().time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the schedule of the traffic, not a wait
                if n % spacing == spacing // 2:
                    event = Event.untyped(
                        "notification:new", {"n": n}, id=f"for-ana-{n}", audience=User(user="ana")
                    )
                    notifications.append(event.id)
                else:
                    event = Event.untyped(
                        "news:posted", {"n": n}, id=f"other-{n}", audience=other(n)
                    )
                await publisher.send(event.to_json(), routing_key(event), event.id)
            away = asyncio.get_running_loop().time() - began
            # Once another client gets a broadcast sent last, the bridge has taken every
            # event before it: none of them can come to ana live, after her replay.
            async with connect(f"ws://127.0.0.1:{bridge.port}/ws") as observer:
                assert (await recv_json(observer))["type"] == "bridge:welcome"
                await observer.send(json.dumps({"op": "ping"}))
                last = Event.untyped("news:posted", {"n": total}, id="last")
                await publisher.send(last.to_json(), routing_key(last), last.id)
                while (await recv_json(observer, timeout=30)).get("id") != "last":
                    pass
            async with connect(url + "&after=before-leaving") as ws:
                assert (await recv_json(ws))["type"] == "bridge:welcome"
                reset = await recv_json(ws)
                await ws.send(json.dumps({"op": "ping"}))
                got = []
                while (message := await recv_json(ws, timeout=10))["type"] != "bridge:pong":
                    got.append(message["id"])
        finally:
            await publisher.close()
    print(
        f"offline: away {away:.0f} s while {OTHERS} other events passed; on reconnect "
        f"{reset['type']} lost={reset.get('lost')} then {len(got)} events, "
        f"{sum(i.startswith('for-ana') for i in got)} of them the {NOTIFICATIONS} notifications"
    )
    assert len(notifications) == NOTIFICATIONS
    assert (reset["type"], reset["lost"]) == ("bridge:reset", ["all"])
    assert got == notifications  # once each, in order, and nothing else
