"""The hub, driven through its two small interfaces with no socket: what each session is sent.

Sessions here have a :class:`Link` that keeps what is written and a framing
that writes events and messages as readable JSON lines, and counts how often
it was asked. The hub runs on the test's event loop, as it does in a bridge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from api_rest.events import Reserva, ReservaCreada, catalog
from bridge.auth import Authenticator
from bridge.config import Limits
from bridge.hub import Hub
from bridge.metrics import Metrics
from bridge.router import Entry, Router
from bridge.session import Phase, Session
from schemas import Event, Role, User
from schemas.protocol import CLOSE_TOO_SLOW, CLOSE_UNAUTHORIZED

SECRET = "a-secret-for-the-hub-tests-long-enough"


class Lines:
    """A framing that writes one JSON object per line, and counts its calls."""

    shared = True

    def __init__(self) -> None:
        self.framed: list[list[int]] = []

    def events(self, entries: list[Entry], *, batch: bool) -> bytes:
        self.framed.append([e.seq for e in entries])
        if batch:
            return json.dumps({"batch": [json.loads(e.json) for e in entries]}).encode() + b"\n"
        return b"".join(e.json + b"\n" for e in entries)

    def message(self, payload: bytes) -> bytes:
        return payload + b"\n"

    def reset(self, payload: bytes, latest: str | None) -> bytes:
        return payload + b"\n"


@dataclass
class Link:
    """Keeps what the hub writes; ``unread`` is what its peer has not read.

    Like an asyncio transport whose high-water mark is 0, it tells the hub when
    bytes start waiting and when they are all gone.
    """

    written: bytearray = field(default_factory=bytearray)
    waiting: int = 0
    hub: Hub | None = None
    session: Session | None = None
    closed: tuple[int, str] | None = None
    aborted: bool = False
    alive: bool = True
    #: Set whenever the hub does anything to it.
    touched: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, condition: Callable[[], bool], timeout: float = 2) -> None:
        """Wait until the hub has done what ``condition`` checks."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.touched.clear()
                await self.touched.wait()

    @property
    def unread(self) -> int:
        return self.waiting

    @unread.setter
    def unread(self, size: int) -> None:
        before, self.waiting = self.waiting, size
        assert self.hub is not None
        assert self.session is not None
        if size and not before:
            self.hub.on_paused(self.session)
        elif before and not size:
            self.hub.on_resumed(self.session)

    def write(self, data: bytes) -> None:
        self.written += data
        self.touched.set()

    def buffered(self) -> int:
        return self.waiting

    def ping(self) -> bool:
        return self.alive

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.touched.set()

    def abort(self) -> None:
        self.aborted = True
        self.touched.set()

    def messages(self) -> list[dict[str, Any]]:
        """Everything written so far, one JSON object per line; then forgotten."""
        lines, self.written = bytes(self.written).splitlines(), bytearray()
        return [json.loads(line) for line in lines]


class Bench:
    """A hub with sessions on fake links."""

    def __init__(self, limits: Limits) -> None:
        self.router: Router[Session] = Router()
        self.authenticator = Authenticator(SECRET)
        self.hub = Hub(
            self.router,
            self.authenticator,
            limits=limits,
            instance="hub-test",
            record=lambda _: None,
            metrics=Metrics(
                connections_by_role=self.router.count_by_role,
                connections=lambda: len(self.hub.sessions),
                broker_connected=lambda: True,
                dead_lettered=lambda: 0,
                queued=lambda: self.hub.queued,
            ),
            catalog=catalog,
        )
        self.framing = Lines()

    def token(self, user: str = "u1", roles: tuple[str, ...] = (), ttl: float = 300) -> str:
        return self.authenticator.issue(user, roles, ttl=timedelta(seconds=ttl))

    def session(
        self, user: str | None = "u1", roles: tuple[str, ...] = (), *, batch: bool = False
    ) -> tuple[Session, Link]:
        """A session that joined (``user`` None: anonymous, or awaiting a token), welcome read."""
        link = Link(hub=self.hub)
        session = link.session = Session(
            link, self.framing, transport="test", batch=batch, remote="test"
        )
        principal = None if user is None else self.authenticator.verify(self.token(user, roles))
        self.hub.open(session, principal, anonymous=False)
        if principal is not None:
            assert link.messages()[0]["type"] == "bridge:welcome"
        return session, link

    def live(self, *args: Any, **kwargs: Any) -> tuple[Session, Link]:
        """A session past its resume window: live events go at once."""
        session, link = self.session(*args, **kwargs)
        self.hub.release(session)
        return session, link

    def publish(self, *events: Event) -> None:
        for event in events:
            self.hub.on_event(event)

    async def turn(self) -> None:
        """Let the flush the hub scheduled run."""
        await asyncio.sleep(0)


def reserva(n: int, audience: Role | User | None = None) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}", audience=audience)


def ids(link: Link) -> list[str]:
    return [m["id"] for m in link.messages() if "id" in m]


@pytest.fixture
async def bench() -> Bench:
    return Bench(Limits(resume_window=30, auth_timeout=30))


async def test_an_event_reaches_its_audience_only_framed_once_per_turn(bench: Bench) -> None:
    (_, cliente), (_, proveedor), (_, other) = (
        bench.live("u1", ("cliente",)),
        bench.live("u2", ("proveedor",)),
        bench.live("u3"),
    )
    bench.publish(reserva(1, Role(role="cliente")), reserva(2, User(user="u3")), reserva(3))
    await bench.turn()
    assert (ids(cliente), ids(proveedor), ids(other)) == (["e1", "e3"], ["e3"], ["e2", "e3"])
    # One write per session per turn: the framing was asked once for each.
    assert sorted(map(len, bench.framing.framed)) == [1, 2, 2]


async def test_sessions_that_ask_for_batches_share_one_frame(bench: Bench) -> None:
    sessions = [bench.live(f"u{n}", batch=True) for n in range(3)]
    bench.publish(reserva(1), reserva(2))
    for _, link in sessions:
        await link.until(lambda link=link: bool(link.written))  # type: ignore[misc]
    assert bench.framing.framed == [[1, 2]], "built once for the three"
    for _, link in sessions:
        (message,) = link.messages()
        assert [e["id"] for e in message["batch"]] == ["e1", "e2"]


async def test_live_events_wait_for_a_new_session_to_say_whether_it_resumes(
    bench: Bench,
) -> None:
    bench.publish(reserva(1), reserva(2))
    session, link = bench.session()
    bench.publish(reserva(3))
    await bench.turn()
    assert ids(link) == [], "held"
    bench.hub.resume(session, "e1")
    await bench.turn()
    assert ids(link) == ["e2", "e3"], "the replay, then what was held: nothing twice"


async def test_a_session_without_a_token_gets_nothing_and_is_closed_in_time() -> None:
    bench = Bench(Limits(auth_timeout=0.05))
    session, link = bench.session(user=None)
    assert session.phase is Phase.AWAITING_TOKEN
    bench.publish(reserva(1))
    await bench.turn()
    assert link.written == b""
    await link.until(lambda: link.closed is not None)
    assert link.closed == (CLOSE_UNAUTHORIZED, "send {op: auth} with a token within 0.05 s")
    assert session.phase is Phase.CLOSING


async def test_a_token_sent_as_a_message_joins_with_its_roles(bench: Bench) -> None:
    session, link = bench.session(user=None)
    auth = json.dumps({"op": "auth", "token": bench.token("u9", ("admin",))}).encode()
    bench.hub.on_message(session, auth)
    assert session.phase is Phase.AUTHENTICATED
    assert link.messages() == [
        {"type": "bridge:welcome", "user": "u9", "roles": ["admin"], "instance": "hub-test"}
    ]
    assert bench.router.count_by_role() == {"admin": 1}


@pytest.mark.parametrize(
    ("message", "closed"),
    [
        (b'{"op": "ping"}', (CLOSE_UNAUTHORIZED, "authenticate first: {op: auth, token}")),
        (b'{"op": "auth", "token": "forged"}', (CLOSE_UNAUTHORIZED, "token not valid")),
    ],
)
async def test_a_session_awaiting_its_token_is_closed_on_anything_else(
    bench: Bench, message: bytes, closed: tuple[int, str]
) -> None:
    session, link = bench.session(user=None)
    bench.hub.on_message(session, message)
    assert link.closed is not None
    assert link.closed[0] == closed[0]
    assert closed[1] in link.closed[1]
    assert session.phase is Phase.CLOSING


async def test_a_message_it_cannot_read_gets_an_error_and_the_session_stays(
    bench: Bench,
) -> None:
    session, link = bench.live()
    bench.hub.on_message(session, b'{"op": "dance"}')
    bench.hub.on_message(session, b'{"op": "ping"}')
    error, pong = link.messages()
    assert error["type"] == "bridge:error"
    assert pong == {"type": "bridge:pong"}
    assert session.phase is Phase.AUTHENTICATED


async def test_a_new_token_for_another_user_closes_the_session(bench: Bench) -> None:
    session, link = bench.live("u1")
    bench.hub.on_message(session, json.dumps({"op": "auth", "token": bench.token("u2")}).encode())
    assert link.closed == (CLOSE_UNAUTHORIZED, "a new token must name the connection's user")


async def test_a_session_too_far_behind_is_closed_and_the_others_go_on() -> None:
    bench = Bench(Limits(resume_window=30, max_send_buffer=1000))
    slow_session, slow = bench.live("u1")
    _, other = bench.live("u2")
    slow.unread = 10  # it stopped reading: bytes wait, and pile up
    slow.unread = 1001
    bench.publish(reserva(1))
    await bench.turn()
    assert slow.closed == (CLOSE_TOO_SLOW, "too slow: reconnect and resume")
    assert slow_session.phase is Phase.CLOSING
    assert ids(other) == ["e1"]
    bench.publish(reserva(2))
    await bench.turn()
    assert ids(slow) == [], "nothing more once closing"
    assert ids(other) == ["e2"]


async def test_a_closed_session_is_forgotten_with_its_buffered_bytes(bench: Bench) -> None:
    session, link = bench.live()
    link.unread = 500
    bench.publish(reserva(1))
    await bench.turn()
    bench.publish(reserva(2))
    await bench.turn()
    assert bench.hub.queued == 500
    bench.hub.on_closed(session, 1000, None)
    assert bench.hub.queued == 0
    assert not bench.hub.sessions
    assert bench.hub.emptied.is_set()
    assert bench.router.subscribers == 0


async def test_keepalive_drops_a_session_whose_peer_is_gone() -> None:
    bench = Bench(Limits(ping_interval=0.05))
    session, link = bench.live()
    link.alive = False
    keepalive = asyncio.create_task(bench.hub.keepalive())
    try:
        await link.until(lambda: link.aborted)
    finally:
        keepalive.cancel()
    assert session in bench.hub.sessions, "gone once its socket reports the loss"


async def test_a_session_that_said_where_to_resume_gets_it_without_a_hold(bench: Bench) -> None:
    bench.publish(reserva(1), reserva(2))
    link = Link()
    session = Session(link, bench.framing, transport="test", batch=False, remote="t", after="e1")
    bench.hub.open(session, bench.authenticator.verify(bench.token()), anonymous=False)
    bench.publish(reserva(3))
    await bench.turn()
    assert ids(link) == ["e2", "e3"]
    assert session.timer is None, "no resume window to wait for"


async def test_a_stream_that_cannot_resume_later_starts_live_at_once(bench: Bench) -> None:
    link = Link()
    session = Session(link, bench.framing, transport="test", batch=False, remote="t", holds=False)
    bench.hub.open(session, None, anonymous=True)
    bench.publish(reserva(1))
    await bench.turn()
    assert ids(link) == ["e1"]
    assert session.phase is Phase.ANONYMOUS


# Sessions that keep up: written to in one loop over their audience


async def test_sessions_that_keep_up_share_one_frame_written_in_one_loop(bench: Bench) -> None:
    (first, a), (second, b) = bench.live("u1"), bench.live("u2")
    await bench.turn()
    assert (first.live, second.live) == (True, True), "nothing queued, nothing waiting: live"
    bench.framing.framed.clear()
    bench.publish(reserva(1), reserva(2))
    await bench.turn()
    assert (ids(a), ids(b)) == (["e1", "e2"], ["e1", "e2"])
    assert bench.framing.framed == [[1, 2]], "a burst to one audience: framed once for both"


async def test_a_session_that_falls_behind_mid_turn_gets_that_turn_in_order(bench: Bench) -> None:
    session, link = bench.live()
    await bench.turn()
    bench.publish(reserva(1))
    link.unread = 10  # a pong did not fit in its socket: bytes wait
    assert not session.live
    bench.publish(reserva(2))
    await bench.turn()
    assert ids(link) == ["e1", "e2"], "the turn's live write first, then its mailbox"
    link.unread = 0  # it read everything
    assert session.live, "caught up: live again"
    bench.publish(reserva(3))
    await bench.turn()
    assert ids(link) == ["e3"]


async def test_a_session_closed_mid_turn_gets_the_turn_s_events_before_its_close(
    bench: Bench,
) -> None:
    session, link = bench.live()
    await bench.turn()
    bench.publish(reserva(1))
    bench.hub.close(session, 1000, "bye")
    assert ids(link) == ["e1"]
    assert link.closed == (1000, "bye")
    bench.publish(reserva(2))
    await bench.turn()
    assert ids(link) == [], "nothing after its close"


async def test_a_live_session_that_resumes_again_gets_nothing_twice(bench: Bench) -> None:
    bench.publish(reserva(1))
    session, link = bench.live()
    await bench.turn()
    bench.publish(reserva(2))
    await bench.turn()
    assert ids(link) == ["e2"]
    bench.hub.resume(session, "e1")
    await bench.turn()
    assert link.messages() == [], "e2 went out live already"
    bench.hub.resume(session, None)
    await bench.turn()
    assert [m["type"] for m in link.messages()] == ["bridge:reset"], "e1 would come after e2"
    bench.publish(reserva(3))
    await bench.turn()
    assert ids(link) == ["e3"]
    assert session.live


async def test_a_monitor_is_never_live_and_sees_every_audience(bench: Bench) -> None:
    link = Link(hub=bench.hub)
    session = link.session = Session(link, bench.framing, transport="t", batch=False, remote="t")
    token = bench.authenticator.issue("ops", [], ttl=timedelta(seconds=60), monitor=True)
    bench.hub.open(session, bench.authenticator.verify(token), anonymous=False)
    bench.hub.release(session)
    await bench.turn()
    bench.publish(reserva(1, User(user="u7")), reserva(2))
    await bench.turn()
    assert not session.live
    assert ids(link) == ["e1", "e2"]


async def test_batched_sessions_that_keep_up_share_one_frame_per_window() -> None:
    bench = Bench(Limits(resume_window=30, batch_window=0.05))
    sessions = [bench.live(f"u{n}", batch=True) for n in range(3)]
    held, _ = bench.session("u9")
    await bench.turn()
    assert [s.live for s, _ in sessions] == [True] * 3
    assert not held.live, "held until it says whether it resumes"
    bench.framing.framed.clear()
    bench.publish(reserva(1))  # after a quiet spell: at once
    await sessions[0][1].until(lambda: b"e1" in sessions[0][1].written)
    bench.publish(reserva(2), reserva(3))  # within the window: together, when it closes
    for _, link in sessions:
        await link.until(lambda link=link: b"e3" in link.written)  # type: ignore[misc]
    assert bench.framing.framed == [[1], [2, 3]], "each built once for the three"
    for _, link in sessions:
        assert [[e["id"] for e in m["batch"]] for m in link.messages()] == [["e1"], ["e2", "e3"]]
