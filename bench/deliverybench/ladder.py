"""The highest sustained rate: when a step passes, what stopped it, which step is next."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass, field

from .constants import BISECT_ABOVE, MAX_BISECTIONS, MIN_STEP_EVENTS, RATE_KEPT, SATURATED
from .results import Kind, Result
from .scenarios import Group


def sustained(result: Result, p99_limit: float) -> list[str]:
    """Why ``result`` is not a sustained rate; empty if it is."""
    why = []
    if result.published.failed:
        why.append(f"{result.published.failed} not sent")
    elif result.published.rate < RATE_KEPT * result.scenario.rate:
        why.append(f"sent {result.published.rate:.1f}/s")
    if result.loss:
        why.append(f"loss {result.loss}")
    if result.duplicates:
        why.append(f"dup {result.duplicates}")
    if result.dropped:
        why.append(f"dropped {result.dropped}")
    p99, measured = result.judged_p99()
    if not p99 < p99_limit:
        why.append(f"{measured} {p99:.0f} ms")
    return why


def stopped_by(result: Result, p99_limit: float) -> str:
    """Which side held back the first step that was not sustained, from both cores' load."""
    usage = result.usage
    core0, core1 = usage.loads[:2]
    server, generator = usage.server_percent, usage.generator_percent
    short = result.published.failed or result.published.rate < RATE_KEPT * result.scenario.rate
    causes = (
        (server >= SATURATED, f"server: its process {server:.0f} % of a core"),
        (
            core0 >= SATURATED,
            f"server's core: core0 {core0:.0f} % (server {server:.0f} %, the rest others)",
        ),
        (
            generator >= SATURATED,
            f"load generator: gen {generator:.0f} %, core1 {core1:.0f} % (server {server:.0f} %)",
        ),
        (
            core1 >= SATURATED,
            f"load generator's core: core1 {core1:.0f} % (gen {generator:.0f} %, the rest "
            f"others; server {server:.0f} %)",
        ),
        (short, f"the feeder: {', '.join(sustained(result, float('inf')))} (no core saturated)"),
        (
            1000 * result.published.slowest_confirm >= p99_limit,
            f"RabbitMQ: a publish waited {1000 * result.published.slowest_confirm:.0f} ms for "
            f"its confirm, no core saturated (core0 {core0:.0f} %, core1 {core1:.0f} %): disk?",
        ),
    )
    return next(
        (text for matched, text in causes if matched),
        f"neither core saturated (core0 {core0:.0f} %, core1 {core1:.0f} %): something else",
    )


@dataclass
class Ladder:
    """The highest-sustained-rate steps of one server at one number of clients."""

    server: str
    clients: int
    steps: list[Result] = field(default_factory=list)
    #: Why the ladder did not run, or did not finish.
    note: str = ""

    def verdicts(self, p99_limit: float) -> list[tuple[Result, list[str]]]:
        return [(r, sustained(r, p99_limit)) for r in self.steps]

    def best(self, p99_limit: float) -> Result | None:
        """The highest passing step below the lowest failing one."""
        failing = self.first_failure(p99_limit)
        ceiling = failing.scenario.rate if failing is not None else float("inf")
        passing = [r for r, why in self.verdicts(p99_limit) if not why]
        below = [r for r in passing if r.scenario.rate < ceiling]
        return max(below, key=lambda r: r.scenario.rate, default=None)

    def first_failure(self, p99_limit: float) -> Result | None:
        failing = [r for r, why in self.verdicts(p99_limit) if why]
        return min(failing, key=lambda r: r.scenario.rate, default=None)


def next_rate(ladder: Ladder, args: Namespace) -> float | None:
    """The next step: double until a step fails, then bisect below it (at most twice).

    If the first step fails, halve down to ``--ladder-min``. None when done.
    """
    rates = {r.scenario.rate for r in ladder.steps}
    failing = ladder.first_failure(args.p99_limit)
    best = ladder.best(args.p99_limit)
    if failing is None:
        up = 2 * max(rates)
        return up if up <= args.ladder_max else None
    low = failing.scenario.rate
    if best is None:
        down = min(rates) / 2
        return down if down >= args.ladder_min else None
    high = best.scenario.rate
    bisections = len(rates - _grid(args))
    middle = round((high + low) / 2, 3)
    if low / high > BISECT_ABOVE and bisections < MAX_BISECTIONS and middle not in rates:
        return middle
    return None


def _grid(args: Namespace) -> set[float]:
    """The doubling rates: --ladder-min x 2^k, and --rates."""
    rates = {args.ladder_min * 2**k for k in range(16)}
    return rates | set(args.rates)


def start_rate(best: float | None, measured_at: int, clients: int, args: Namespace) -> float:
    """A first step for ``clients``: the doubling rate at or below what the same
    deliveries per second as ``best`` at ``measured_at`` clients would be."""
    rate: float = args.ladder_min
    if best is None:
        return rate
    target = best * measured_at / clients
    while rate * 2 <= target:
        rate *= 2
    return rate


async def climb(group: Group, ladder: Ladder) -> None:
    """Run ladder steps on ``group``'s clients after those already in ``ladder``."""
    args = group.args
    while (rate := next_rate(ladder, args)) is not None:
        duration = max(args.step_duration, MIN_STEP_EVENTS / rate)
        ladder.steps.append(await group.run(rate, Kind.STEP, duration, args.step_drain))
