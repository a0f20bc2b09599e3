"""The slow-client policy, without sockets: who stays, who is dropped, and which bound said so."""

from __future__ import annotations

import pytest

from bridge.slow import BEHIND, Verdict, judge

LIMIT = 1024 * 1024
ALL = 256 * 1024 * 1024


def verdict(buffered: int, *, allowance: int = 0, queued: int = 0) -> Verdict:
    return judge(
        buffered, allowance=allowance, queued=queued, max_send_buffer=LIMIT, max_queued_bytes=ALL
    )


@pytest.mark.parametrize("buffered", [0, 1, LIMIT])
def test_a_client_within_its_buffer_stays_and_any_burst_allowance_ends(buffered: int) -> None:
    assert verdict(buffered, allowance=5 * LIMIT) == Verdict(None, 0)


def test_a_client_past_its_buffer_is_dropped() -> None:
    assert verdict(LIMIT + 1) == Verdict("max_send_buffer", 0)


def test_a_burst_the_bridge_sent_may_drain_at_the_clients_pace() -> None:
    # A 3 MiB replay to a client that kept up: it may hold the burst plus its own limit.
    burst = 3 * LIMIT
    assert verdict(LIMIT + burst, allowance=burst) == Verdict(None, burst)
    # As it reads, what it drained needs no allowance any more ...
    assert verdict(2 * LIMIT, allowance=burst) == Verdict(None, 2 * LIMIT)
    assert verdict(LIMIT // 2, allowance=burst) == Verdict(None, 0)
    # ... and once it stops reading, its own limit more gets it dropped.
    assert verdict(LIMIT + burst + 1, allowance=burst) == Verdict("max_send_buffer", burst)


def test_the_allowance_never_outgrows_what_is_left_of_the_burst() -> None:
    assert verdict(LIMIT + 100, allowance=10 * LIMIT) == Verdict(None, LIMIT + 100)
    assert verdict(LIMIT + 100, allowance=LIMIT + 50) == Verdict(None, LIMIT + 50)
    # Past its limit and what is left of the burst: dropped.
    assert verdict(3 * LIMIT, allowance=LIMIT + 50).broke == "max_send_buffer"


def test_when_all_clients_hold_too_much_those_behind_go_first() -> None:
    over = ALL + 1
    assert verdict(BEHIND + 1, queued=over) == Verdict("max_queued_bytes", 0)
    assert verdict(BEHIND, queued=over) == Verdict(None, 0)  # keeping up: it stays
    assert verdict(BEHIND + 1, queued=ALL) == Verdict(None, 0)  # at the bound, not past it
