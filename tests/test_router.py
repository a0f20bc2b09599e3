"""The routing core, without sockets: audiences, duplicates, history, resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api_rest.events import DashboardUpdate, Reserva, ReservaCreada
from bridge.mailbox import Mailbox
from bridge.resume import resume
from bridge.router import ANONYMOUS, Principal, Router
from schemas import Channel, Event, Everyone, Role, User
from schemas.audience import Audience


@dataclass(eq=False)
class Sub:
    principal: Principal
    channels: set[str] = field(default_factory=set)
    live: bool = False
    framing: Any = None
    written: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.written.append(data)


def event(audience: Audience | None = None, id: str | None = None) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=1)), audience=audience, id=id)


def test_an_event_for_everyone_reaches_every_connection_anonymous_too() -> None:
    router: Router[Sub] = Router()
    subs = [Sub(ANONYMOUS), Sub(Principal("u1", frozenset({"cliente"})))]
    for sub in subs:
        router.join(sub)
    assert router.accept(event()) is not None
    assert set(router.recipients(event())) == set(subs)


def test_a_role_event_reaches_only_that_role() -> None:
    router: Router[Sub] = Router()
    prov, cli, anon = (
        Sub(Principal("p", frozenset({"proveedor"}))),
        Sub(Principal("c", frozenset({"cliente"}))),
        Sub(ANONYMOUS),
    )
    for sub in (prov, cli, anon):
        router.join(sub)
    assert list(router.recipients(event(Role(role="proveedor")))) == [prov]


def test_a_user_event_reaches_every_device_of_that_user_only() -> None:
    router: Router[Sub] = Router()
    phone, laptop, other = Sub(Principal("u1")), Sub(Principal("u1")), Sub(Principal("u2"))
    for sub in (phone, laptop, other):
        router.join(sub)
    assert set(router.recipients(event(User(user="u1")))) == {phone, laptop}


def test_a_channel_event_reaches_its_subscribers_only_and_monitors() -> None:
    router: Router[Sub] = Router()
    follower, joined_later, other, monitor = (
        Sub(Principal("u1"), {"order:42"}),
        Sub(Principal("u2")),
        Sub(Principal("u3"), {"order:43"}),
        Sub(Principal("ops", monitor=True)),
    )
    for sub in (follower, joined_later, other, monitor):
        router.join(sub)
    joined_later.channels.add("order:42")
    router.subscribe(joined_later, "order:42")
    to_42 = event(Channel(channel="order:42"))
    assert set(router.recipients(to_42)) == {follower, joined_later, monitor}
    router.unsubscribe(follower, "order:42")
    router.leave(joined_later)
    assert set(router.recipients(to_42)) == {monitor}
    assert {name: set(group) for name, group in router.by_channel().items()} == {
        "order:43": {other}
    }


def test_a_connection_that_left_gets_nothing_and_leaves_no_empty_index() -> None:
    router: Router[Sub] = Router()
    sub = Sub(Principal("u1", frozenset({"proveedor"})))
    router.join(sub)
    router.leave(sub)
    assert list(router.recipients(event(Role(role="proveedor")))) == []
    assert router.count_by_role() == {}


def test_an_event_id_seen_before_is_accepted_once() -> None:
    router: Router[Sub] = Router()
    assert router.accept(event(id="e1")) is not None
    assert router.accept(event(id="e1")) is None
    assert [e.id for e in router.history(ANONYMOUS)] == ["e1"]


def test_the_history_keeps_the_last_n_of_each_stream_in_order() -> None:
    router: Router[Sub] = Router(history_size=3)
    for i in range(5):
        router.accept(event(id=f"e{i}"))
        router.accept(event(User(user="u1"), id=f"n{i}"))
    assert [e.id for e in router.history(ANONYMOUS)] == ["e2", "e3", "e4"]
    everything = [e.id for e in router.history(Principal("u1"))]
    assert everything == ["e2", "n2", "e3", "n3", "e4", "n4"]


def test_the_latest_dashboard_update_is_the_snapshot() -> None:
    router: Router[Sub] = Router()
    for total in (1, 2):
        router.accept(Event.of(DashboardUpdate.model_validate({"services": {"total": total}})))
    router.accept(event())
    assert router.snapshot is not None
    assert b'"total":2' in router.snapshot.json


def test_replay_gives_what_the_principal_may_see_after_the_id() -> None:
    router: Router[Sub] = Router()
    router.accept(event(id="a"))
    router.accept(event(Role(role="proveedor"), id="b"))
    router.accept(event(Role(role="cliente"), id="c"))
    router.accept(event(id="d"))
    after = router.seq_of("a")
    assert after is not None
    streams = Principal("u", frozenset({"cliente"})).streams
    replay, lost = router.replay(streams, after, until=router.head)
    assert [e.id for e in replay] == ["c", "d"]
    assert lost == []
    assert router.seq_of("gone") is None


# Property: whatever connections and events, each event reaches exactly its audience
# (issue 8, scenario 11: 10,000 cases, in a few seconds). Each case is one draw of
# bytes, read as numbers: hypothesis draws and shrinks bytes far faster than lists of
# objects, and a shorter or smaller draw is still a simpler case. The names overlap,
# so near misses are common: a role named like a user, "admin" and "Admin", monitors
# and anonymous connections among the others.

NAMES = ("proveedor", "cliente", "admin", "Admin", "u1", "u2", "u3")
MAX_CONNECTIONS, MAX_EVENTS = 12, 8


class Numbers:
    """Reads numbers from a draw of bytes; bytes past its end read as 0."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def next(self, size: int = 1) -> int:
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return int.from_bytes(chunk.ljust(size, b"\0"), "big")


CHANNELS = ("order:1", "order:2")


def principal_of(code: int) -> Principal:
    """Bits 0-2: the user (7: none); bits 3-9: the roles; bit 10: a monitor."""
    user = NAMES[code & 7] if code & 7 < len(NAMES) else None
    roles = frozenset(name for bit, name in enumerate(NAMES) if code >> 3 & 1 << bit)
    return Principal(user, roles, monitor=bool(code >> 10 & 1))


@cache
def event_for(code: int, n: int) -> Event:
    """Event number ``n`` of a case, for audience ``code``; built once for all cases."""
    return event(audience_of(code), id=f"e{n}")


def audience_of(code: int) -> Audience:
    """0: everyone; 1 to 7: a role; 8 to 14: a user; 15 and 16: a channel."""
    if code == 0:
        return Everyone()
    if code <= len(NAMES):
        return Role(role=NAMES[code - 1])
    if code <= 2 * len(NAMES):
        return User(user=NAMES[code - len(NAMES) - 1])
    return Channel(channel=CHANNELS[code - 2 * len(NAMES) - 1])


def channels_of(code: int) -> set[str]:
    """Bits 11 and 12: the channels subscribed to."""
    return {name for bit, name in enumerate(CHANNELS) if code >> 11 & 1 << bit}


def in_audience(sub: Sub, audience: Audience) -> bool:
    """The rule as the contract states it, written apart from the router's own."""
    principal = sub.principal
    if principal.monitor or isinstance(audience, Everyone):
        return True
    if isinstance(audience, Role):
        return audience.role in principal.roles
    if isinstance(audience, Channel):
        return audience.channel in sub.channels
    return isinstance(audience, User) and audience.user == principal.user


@settings(max_examples=10_000, deadline=None)
@given(st.binary(max_size=2 + 2 * MAX_CONNECTIONS + 2 + MAX_EVENTS))
def test_no_event_ever_reaches_a_connection_outside_its_audience(data: bytes) -> None:
    numbers = Numbers(data)
    connections = [numbers.next(2) % 2**13 for _ in range(numbers.next() % (MAX_CONNECTIONS + 1))]
    leaving = numbers.next(2)  # bit i: connection i left before the events
    audiences = [
        numbers.next() % (2 * len(NAMES) + len(CHANNELS) + 1)
        for _ in range(numbers.next() % (MAX_EVENTS + 1))
    ]
    router: Router[Sub] = Router()
    subs = [Sub(principal_of(code), channels_of(code)) for code in connections]
    for sub in subs:
        router.join(sub)
    gone = {sub for i, sub in enumerate(subs) if leaving >> i & 1}
    for sub in gone:
        router.leave(sub)
    for n, code in enumerate(audiences):
        reached = list(router.recipients(event_for(code, n)))
        assert len(reached) == len(set(reached)), "an event went twice to one connection"
        inside = {s for s in subs if s not in gone and in_audience(s, audience_of(code))}
        assert set(reached) == inside  # nobody outside, everybody inside


# Property: resume delivers each visible event after the id once, in order.


@given(before=st.integers(0, 6), during=st.integers(0, 6), after_index=st.integers(0, 6))
def test_resume_delivers_each_missed_event_once_and_in_order(
    before: int, during: int, after_index: int
) -> None:
    router: Router[Sub] = Router()
    sub = Sub(Principal("u1"))
    for i in range(before):
        router.accept(event(id=f"old{i}"))
    mailbox = Mailbox(joined=router.head)
    router.join(sub)
    for i in range(during):
        entry = router.accept(event(id=f"live{i}"))
        assert entry is not None
        mailbox.push(entry)
    ids = [e.id for e in router.history(sub.principal)]
    after = ids[after_index] if after_index < len(ids) else "unknown"
    lost = resume(router, sub.principal.streams, mailbox, after)
    got = [e.id for e in mailbox.take()]
    if after == "unknown":
        assert lost == sub.principal.streams
    else:
        assert lost == []
        assert got == ids[ids.index(after) + 1 :]


def test_a_resume_after_live_events_went_out_asks_for_a_reset() -> None:
    router: Router[Sub] = Router()
    router.accept(event(id="a"))
    router.accept(event(id="b"))
    mailbox = Mailbox(joined=router.head)
    mailbox.held = False
    live = router.accept(event(id="c"))
    assert live is not None
    mailbox.push(live)
    mailbox.take()  # "c" was sent before the client asked to resume after "a"
    assert resume(router, ANONYMOUS.streams, mailbox, "a") == ["all"]


def test_a_users_notifications_outlive_a_busy_stream_of_broadcasts() -> None:
    router: Router[Sub] = Router(history_size=100)
    router.accept(event(id="last-seen"))
    notifications = []
    for i in range(5_000):
        router.accept(event(id=f"b{i}"))
        if i % 250 == 0:
            notifications.append(f"n{i}")
            router.accept(event(User(user="u1"), id=f"n{i}"))
    router.accept(event(User(user="u2"), id="other"))
    mailbox = Mailbox(joined=router.head)
    lost = resume(router, Principal("u1").streams, mailbox, "last-seen")
    got = [e.id for e in mailbox.take()]
    assert lost == ["all"]  # 5,000 broadcasts: the last 100 are kept, the others are gone
    assert got == notifications  # the client reloads the broadcasts' state instead
