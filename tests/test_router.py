"""The routing core, without sockets: audiences, duplicates, history, resume."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from bridge.outbox import Outbox
from bridge.router import ANONYMOUS, Principal, Router
from schemas import (
    DashboardUpdate,
    Event,
    Everyone,
    Reserva,
    ReservaCreada,
    Role,
    User,
)
from schemas.audience import Audience


@dataclass(eq=False)
class Sub:
    principal: Principal


def event(audience: Audience | None = None, id: str | None = None) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=1)), audience=audience, id=id)


def test_an_event_for_everyone_reaches_every_connection_anonymous_too() -> None:
    router: Router[Sub] = Router()
    subs = [Sub(ANONYMOUS), Sub(Principal("u1", frozenset({"cliente"})))]
    for sub in subs:
        router.join(sub)
    entry = router.accept(event())
    assert entry is not None
    assert set(router.recipients(entry)) == set(subs)


def test_a_role_event_reaches_only_that_role() -> None:
    router: Router[Sub] = Router()
    prov, cli, anon = (
        Sub(Principal("p", frozenset({"proveedor"}))),
        Sub(Principal("c", frozenset({"cliente"}))),
        Sub(ANONYMOUS),
    )
    for sub in (prov, cli, anon):
        router.join(sub)
    entry = router.accept(event(Role(role="proveedor")))
    assert entry is not None
    assert list(router.recipients(entry)) == [prov]


def test_a_user_event_reaches_every_device_of_that_user_only() -> None:
    router: Router[Sub] = Router()
    phone, laptop, other = Sub(Principal("u1")), Sub(Principal("u1")), Sub(Principal("u2"))
    for sub in (phone, laptop, other):
        router.join(sub)
    entry = router.accept(event(User(user="u1")))
    assert entry is not None
    assert set(router.recipients(entry)) == {phone, laptop}


def test_a_connection_that_left_gets_nothing_and_leaves_no_empty_index() -> None:
    router: Router[Sub] = Router()
    sub = Sub(Principal("u1", frozenset({"proveedor"})))
    router.join(sub)
    router.leave(sub)
    entry = router.accept(event(Role(role="proveedor")))
    assert entry is not None
    assert list(router.recipients(entry)) == []
    assert router.count_by_role() == {}


def test_an_event_id_seen_before_is_accepted_once() -> None:
    router: Router[Sub] = Router()
    assert router.accept(event(id="e1")) is not None
    assert router.accept(event(id="e1")) is None
    assert [e.event.id for e in router.history()] == ["e1"]


def test_the_history_keeps_the_last_n_in_order() -> None:
    router: Router[Sub] = Router(history_size=3)
    for i in range(5):
        router.accept(event(id=f"e{i}"))
    assert [e.event.id for e in router.history()] == ["e2", "e3", "e4"]


def test_the_latest_dashboard_update_is_the_snapshot() -> None:
    router: Router[Sub] = Router()
    for total in (1, 2):
        router.accept(Event.of(DashboardUpdate.model_validate({"services": {"total": total}})))
    router.accept(event())
    assert router.snapshot is not None
    assert router.snapshot.event.data == DashboardUpdate.model_validate({"services": {"total": 2}})


def test_replay_gives_what_the_principal_may_see_after_the_id() -> None:
    router: Router[Sub] = Router()
    router.accept(event(id="a"))
    router.accept(event(Role(role="proveedor"), id="b"))
    router.accept(event(Role(role="cliente"), id="c"))
    router.accept(event(id="d"))
    replay = router.replay(Principal("u", frozenset({"cliente"})), "a", until=router.head)
    assert replay is not None
    assert [e.event.id for e in replay] == ["c", "d"]
    assert router.replay(ANONYMOUS, "gone", until=router.head) is None


def test_the_encoded_frame_is_built_once_and_shared() -> None:
    router: Router[Sub] = Router()
    entry = router.accept(event())
    assert entry is not None
    assert entry.frame is entry.frame
    assert entry.frame.endswith(entry.json)


# Property: whatever connections and events, each event reaches exactly its audience.

ROLES = st.sampled_from(["proveedor", "cliente", "admin"])
USERS = st.sampled_from(["u1", "u2", "u3"])
PRINCIPALS = st.one_of(
    st.just(ANONYMOUS),
    st.builds(Principal, USERS, st.frozensets(ROLES, max_size=2)),
)
AUDIENCES = st.one_of(
    st.just(Everyone()),
    st.builds(Role, role=ROLES),
    st.builds(User, user=USERS),
)


@given(principals=st.lists(PRINCIPALS, max_size=8), audiences=st.lists(AUDIENCES, max_size=8),
       leaving=st.sets(st.integers(0, 7)))  # fmt: skip
def test_no_event_ever_reaches_a_connection_outside_its_audience(
    principals: list[Principal], audiences: list[Audience], leaving: set[int]
) -> None:
    router: Router[Sub] = Router()
    subs = [Sub(p) for p in principals]
    for sub in subs:
        router.join(sub)
    gone = {subs[i] for i in leaving if i < len(subs)}
    for sub in gone:
        router.leave(sub)
    for audience in audiences:
        entry = router.accept(event(audience))
        assert entry is not None
        reached = list(router.recipients(entry))
        assert len(reached) == len(set(reached))
        expected = {s for s in subs if s not in gone and s.principal.may_see(entry.event)}
        assert set(reached) == expected


# Property: resume delivers each visible event after the id once, in order.


@given(before=st.integers(0, 6), during=st.integers(0, 6), after_index=st.integers(0, 6))
def test_resume_delivers_each_missed_event_once_and_in_order(
    before: int, during: int, after_index: int
) -> None:
    router: Router[Sub] = Router()
    sub = Sub(Principal("u1"))
    for i in range(before):
        router.accept(event(id=f"old{i}"))
    outbox = Outbox(joined=router.head)
    router.join(sub)
    for i in range(during):
        entry = router.accept(event(id=f"live{i}"))
        assert entry is not None
        outbox.push(entry)
    ids = [e.event.id for e in router.history()]
    after = ids[after_index] if after_index < len(ids) else "unknown"
    after_seq = router.seq_of(after)
    replay = router.replay(sub.principal, after, until=outbox.joined)
    resumed = outbox.resume(after_seq, replay)
    got = [e.event.id for e in outbox.take()]
    if after == "unknown":
        assert not resumed
    else:
        assert resumed
        assert got == ids[ids.index(after) + 1 :]


def test_a_resume_after_live_events_went_out_asks_for_a_reset() -> None:
    router: Router[Sub] = Router()
    router.accept(event(id="a"))
    router.accept(event(id="b"))
    outbox = Outbox(joined=router.head)
    outbox.held = False
    live = router.accept(event(id="c"))
    assert live is not None
    outbox.push(live)
    outbox.take()  # "c" was sent before the client asked to resume after "a"
    replay = router.replay(ANONYMOUS, "a", until=outbox.joined)
    assert not outbox.resume(router.seq_of("a"), replay)
