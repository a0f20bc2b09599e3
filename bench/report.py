"""The whole benchmark in one command: runs delivery.py, memory.py and producer.py.

Each runs as a subprocess with its default settings; what it prints goes to standard
output as it runs (its progress to standard error). Then this writes
``docs/benchmarks.md`` (the date, the machine, the versions each script printed, the
goals of issue 7 with this run's numbers and whether each was met, and each script's
tables and notes verbatim) and ``docs/benchmarks.png`` (server CPU per delivered event,
the highest sustained rates, memory per idle connection), parsing the tables from the
printed text. ``bench/run`` runs it in the locked environment.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ROOT = Path(__file__).resolve().parent.parent

#: name, how to read its tables (one line).
SCRIPTS = (
    (
        "delivery",
        "Server CPU per delivered event (`µs/event`) at 1,000 clients and fixed rates, with "
        "plain and browser-like clients; lower is better, `/NAME` divides by NAME's at the "
        "same rate. Then the highest rate each system sustains at 1,000 and 5,000 clients, "
        "and what stopped it.",
    ),
    (
        "memory",
        "Server memory per idle connection (`KiB/conn`) at 5,000 clients, plain and "
        "compression-offering clients; lower is better, `/NAME` divides by NAME's.",
    ),
    (
        "producer",
        "Time one Django save (or call) spends sending an event, p50 and p99 in ms; "
        "the `ours / ...` lines below the table are the ratios.",
    ),
    (
        "capacity",
        "How many idle connections one bridge process holds on this machine, up to 100,000, "
        "added in steps (`memory.py --capacity`), with its memory per connection and what "
        "stopped it; then the time one event takes to reach every client (p50, p99, last).",
    ),
    (
        "workers",
        "`event-bridge serve --workers 2` against `--workers 1` on this machine (issue 17): "
        "nothing pinned, the load generator on the same cores (its share is printed); the "
        "highest sustained rate at 2,000 clients, server CPU per delivery, p99, and what "
        "stopped each; what one event costs each worker; on paper, how the rate grows with cores.",
    ),
    (
        "floor",
        "Server CPU per delivered event at 1,000 clients, 40 and 80 events/s: the bridge "
        "against the raw-write floor (issue 19), taking turns round after round on fresh "
        "clients; `bridge/floor` divides the medians. With each one's p99 at the probe clients.",
    ),
    (
        "audiences",
        "Server CPU per delivered event by audience (everyone, a role, a user, a channel) at "
        "1,000 clients and 40 events/s, this version against the one before channels "
        "(issue 18), taking turns; `now/before` is the ratio.",
    ),
)

#: Names whose script is another one with arguments: name -> (script, arguments).
COMMANDS = {"capacity": ("memory", ("--capacity",))}

#: delivery.py's table titles (deliverybench.output.TITLES).
FIXED = "Plain clients at fixed rates"
BROWSER = "Browser-like clients, offering permessage-deflate"
STEPS = "Highest sustained rate: every step"
#: audiences.py's table title.
AUDIENCES = "Server CPU per delivered event, by audience"
#: floor.py's table title.
FLOOR = "Server CPU per delivered event, the bridge against the floor"
LADDERS = "Highest sustained rate"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    #: The table's lines as printed: header, dashed rule, rows.
    text: str
    #: Index of the header line in the script's output, and of the line after the table.
    start: int
    end: int
    #: The line before the header, without its colon, if it names the table.
    title: str = ""

    def column(self, name: str) -> int:
        return self.headers.index(name)

    def find(self, **where: str) -> list[str] | None:
        """The first row whose cells equal ``where`` (column names with spaces as _)."""
        columns = {self.column(k.replace("_", " ")): v for k, v in where.items()}
        for row in self.rows:
            if all(row[i] == v for i, v in columns.items()):
                return row
        return None

    def cell(self, row: list[str] | None, name: str) -> float | None:
        return None if row is None or name not in self.headers else number(row[self.column(name)])


@dataclass
class Run:
    name: str
    command: list[str]
    returncode: int = 0
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines).strip("\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs", help="where benchmarks.md and .png go"
    )
    parser.add_argument(
        "--only", nargs="+", choices=[name for name, _ in SCRIPTS], help="run only these scripts"
    )
    return parser.parse_args(argv)


def run_script(name: str) -> Run:
    """Run bench/NAME.py, echoing its standard output line by line and keeping it."""
    script, arguments = COMMANDS.get(name, (name, ()))
    command = [sys.executable, str(ROOT / "bench" / f"{script}.py"), *arguments]
    print(f"\n=== bench/{script}.py {' '.join(arguments)} ===", flush=True)
    result = Run(name, command)
    started = time.monotonic()
    with subprocess.Popen(  # noqa: S603 - our own scripts
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            result.lines.append(line.rstrip("\n"))
    result.returncode = proc.returncode
    result.seconds = time.monotonic() - started
    print(
        f"=== bench/{script}.py: exit {result.returncode}, {result.seconds:.0f} s ===", flush=True
    )
    return result


RULE = re.compile(r"^-+(  -+)+\s*$")


def parse_tables(lines: Sequence[str]) -> list[Table]:
    """Every aligned table: a header line, a rule of dashes, rows up to a blank line.

    Columns are where the rule's dashes are; the last one runs to the end of the line
    (producer.py's free-text note is wider than its rule). A line ending in ``:`` just
    above the header is the table's title.
    """
    tables = []
    for i, line in enumerate(lines):
        if i == 0 or not RULE.match(line):
            continue
        spans: list[tuple[int, int | None]] = [m.span() for m in re.finditer(r"-+", line)]
        spans[-1] = (spans[-1][0], None)

        def cells(text: str, spans: list[tuple[int, int | None]] = spans) -> list[str]:
            return [text[a:b].strip() for a, b in spans]

        body = []
        for row in lines[i + 1 :]:
            if not row.strip():
                break
            body.append(row)
        above = lines[i - 2].strip() if i >= 2 else ""
        tables.append(
            Table(
                headers=cells(lines[i - 1]),
                rows=[cells(r) for r in body],
                text="\n".join([lines[i - 1], line, *body]),
                start=i - 1,
                end=i + 1 + len(body),
                title=above[:-1] if above.endswith(":") else "",
            )
        )
    return tables


def parse_table(lines: Sequence[str]) -> Table | None:
    """The first table, if any."""
    tables = parse_tables(lines)
    return tables[0] if tables else None


def titled(tables: list[Table], title: str) -> Table | None:
    return next((t for t in tables if t.title == title), None)


def number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").lstrip("< "))
    except ValueError:
        return None


def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return [
        f"- CPU: {os.cpu_count()} cores, {model}",
        f"- memory: {memory}",
        f"- Linux {platform.release()}, Python {platform.python_version()}",
        f"- load average when the run started (1, 5, 15 min): {load}",
    ]


def preamble(run: Run, tables: list[Table]) -> list[str]:
    """What the script printed before its first table: versions, the servers' announces."""
    end = tables[0].start if tables else len(run.lines)
    return [line for line in run.lines[:end] if line.strip() and not line.endswith(":")]


# The goals of issue 7, from this run's tables


@dataclass
class Goal:
    measure: str
    target: str
    measured: str = "not measured"
    ratio: str = "-"
    #: True met, False missed, None not measured.
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None and self.measured != "not measured":
            return "measured"  # a measure without a goal, such as the capacity
        return {True: "met", False: "**missed**", None: "not measured"}[self.met]


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def _ratio_goal(measure: str, target: str, value: float | None, limit: float, text: str) -> Goal:
    goal = Goal(measure, target)
    if value is not None:
        goal.measured, goal.ratio, goal.met = text, f"{value:.2f}", value <= limit
    return goal


#: The delivery path's CPU per delivered event, at most this many times the floor's (issue 19).
FLOOR_GOAL = 1.15


def floor_goals(tables: list[Table]) -> list[Goal]:
    """floor.py: the bridge against the raw-write floor at 40 and 80 events/s, the
    medians of rounds taken in turns."""
    table = titled(tables, FLOOR)
    goals = []
    for rate in ("40", "80"):
        measure = (
            f"server CPU per delivered event, 1,000 clients, {rate} events/s, "
            "against the raw-write floor (floor.py, medians of rounds in turns)"
        )
        goal = Goal(measure, f"≤ {FLOOR_GOAL:.2f}x the floor")
        row = table.find(rate=rate) if table else None
        if table is not None and row is not None:
            mine, floor = table.cell(row, "bridge µs"), table.cell(row, "floor µs")
            if mine is not None and floor:
                text = f"{mine:.2f} vs floor {floor:.2f} µs"
                goal = _ratio_goal(measure, goal.target, mine / floor, FLOOR_GOAL, text)
                goal.note = f"each round: {row[table.column('each round')]}"
        goals.append(goal)
    return goals


def headline(fixed: Table | None) -> list[str]:
    """Every server's CPU per delivered event over the floor's, by rate: the headline."""
    if fixed is None or "/floor" not in fixed.headers:
        return ["Not measured: delivery.py's fixed-rate table has no floor."]
    rates = list(dict.fromkeys(r[fixed.column("rate")] for r in fixed.rows))
    names = []
    for r in fixed.rows:
        name = r[fixed.column("server")] + (" ?batch=1" if r[fixed.column("batch")] == "on" else "")
        if name not in names:
            names.append(name)
    floors = [fixed.cell(fixed.find(server="floor", rate=rate), "µs/event") for rate in rates]
    lines = [
        "| server | " + " | ".join(f"{rate} events/s" for rate in rates) + " |",
        "|---|" + "---|" * len(rates),
        "| floor, µs per delivered event | " + " | ".join(_fmt(f) for f in floors) + " |",
    ]
    for name in names:
        if name == "floor":
            continue
        server, _, batch = name.partition(" ")
        cells = []
        for rate in rates:
            row = fixed.find(server=server, batch="on" if batch else "off", rate=rate)
            ratio = fixed.cell(row, "/floor")
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def floor_headline(table: Table | None) -> list[str]:
    if table is None:
        return ["Not measured: floor.py did not run."]
    lines = [
        "| events/s | floor µs | bridge µs | bridge / floor | each round |",
        "|---|---|---|---|---|",
    ]
    for row in table.rows:
        cells = [row[table.column(c)] for c in ("rate", "floor µs", "bridge µs", "bridge/floor")]
        lines.append("| " + " | ".join(cells) + f"x | {row[table.column('each round')]} |")
    return lines


def delivery_goals(tables: list[Table]) -> list[Goal]:
    goals = []
    fixed = titled(tables, FIXED)
    us = "µs/event"
    bridge = fixed.find(server="bridge", batch="off", rate="40") if fixed else None
    batch = fixed.find(server="bridge", batch="on", rate="40") if fixed else None
    nestjs = fixed.find(server="nestjs", batch="off", rate="40") if fixed else None
    sio = fixed.find(server="socketio", batch="off", rate="40") if fixed else None
    cpu = fixed.cell(bridge, us) if fixed else None

    def versus(
        row: list[str] | None, base: list[str] | None, name: str
    ) -> tuple[float | None, str]:
        assert fixed is not None
        mine, theirs = fixed.cell(row, us), fixed.cell(base, us)
        if mine is None or not theirs:
            return None, ""
        return mine / theirs, f"{mine:.2f} vs {name} {theirs:.2f} µs"

    measure = "server CPU per delivered event, 1,000 clients, 40 events/s, one event per frame"
    if fixed is not None:
        value, text = versus(bridge, nestjs, "NestJS")
        goals.append(_ratio_goal(measure, "≤ 2/3 of NestJS", value, 2 / 3, text))
        value, text = versus(bridge, sio, "python-socketio")
        goals.append(_ratio_goal(measure, "≤ 1/6 of python-socketio", value, 1 / 6, text))
        value, text = versus(batch, nestjs, "NestJS")
        goals.append(_ratio_goal("the same with ?batch=1", "≤ 1/4 of NestJS", value, 1 / 4, text))
    else:
        goals += [Goal(measure, "≤ 2/3 of NestJS, ≤ 1/6 of python-socketio")]
    browser = titled(tables, BROWSER)
    row = browser.find(server="bridge", offer="deflate") if browser else None
    measure = "browser-like clients (offering compression): bridge's CPU per delivered event"
    if browser is not None and row is not None:
        ratio, mine = browser.cell(row, "/plain"), browser.cell(row, us)
        accepted = row[browser.column("accepted")]
        text = f"{_fmt(mine)} vs plain {_fmt(cpu)} µs, accepted {accepted}"
        goals.append(_ratio_goal(measure, f"≤ {NOISE:.2f}x plain clients", ratio, NOISE, text))
    else:
        goals.append(Goal(measure, f"≤ {NOISE:.2f}x plain clients"))
    goals += rate_goals(titled(tables, LADDERS))
    goals.append(latency_goal(fixed, bridge))
    return goals


def latency_goal(fixed: Table | None, bridge: list[str] | None) -> Goal:
    """p99 at the probe clients, which read at once; the load generator's beside it."""
    goal = Goal("p99 latency, 40 events/s to 1,000 clients (probe clients)", "≤ 20 ms")
    if fixed is None:
        return goal
    p99 = fixed.cell(bridge, "probe p99 ms")
    everyone = fixed.cell(bridge, "p99 ms")
    floor = fixed.cell(fixed.find(server="floor", rate="40"), "probe p99 ms")
    if p99 is not None:
        goal.measured, goal.ratio, goal.met = f"{p99:.1f} ms", f"{p99 / 20:.2f}", p99 <= 20
        goal.note = (
            f"at the load generator's 1,000 clients: {_fmt(everyone, ' ms', 1)} (its late "
            f"reads, see bench/README.md); the floor's probes: {_fmt(floor, ' ms', 1)}"
        )
    return goal


#: "No worse" within this factor: ratios taken in one run still move by a few percent.
NOISE = 1.10


def rate_goals(ladders: Table | None) -> list[Goal]:
    goals = []
    counts = sorted({int(r[ladders.column("clients")]) for r in ladders.rows}) if ladders else []
    for count in counts or [1000, 5000]:
        goal = Goal(f"highest sustained rate, {count:,} clients", "≥ NestJS's")
        goals.append(goal)
        if ladders is None:
            continue
        ours = ladders.find(server="bridge", clients=str(count))
        theirs = ladders.find(server="nestjs", clients=str(count))
        mine, base = ladders.cell(ours, "max rate"), ladders.cell(theirs, "max rate")
        if mine is None or base is None or ours is None or theirs is None:
            continue
        column = ladders.column("max rate")
        stop = ladders.column("stopped by")
        goal.measured = f"{ours[column]} vs NestJS {theirs[column]} events/s"
        # "< X": no step was sustained, down to the lowest rate tried.
        mine_none, base_none = ours[column].startswith("<"), theirs[column].startswith("<")
        if not base_none:
            goal.ratio = _fmt(0.0 if mine_none else mine / base)
            goal.met = not mine_none and mine >= base
        elif not mine_none:
            goal.met = True
        goal.note = f"bridge stopped by {ours[stop] or '-'}; NestJS by {theirs[stop] or '-'}"
    return goals


def memory_goals(tables: list[Table]) -> list[Goal]:
    memory = tables[0] if tables else None
    goals = []
    for offer in ("plain", "deflate"):
        goal = Goal(f"memory per idle connection, 5,000 clients, {offer} clients", "≤ 15 KiB")
        row = memory.find(server="bridge", offer=offer) if memory else None
        kib = memory.cell(row, "KiB/conn") if memory else None
        if kib is not None and memory is not None:
            goal.measured, goal.ratio, goal.met = f"{kib:.1f} KiB", f"{kib / 15:.2f}", kib <= 15
        goals.append(goal)
    row = memory.find(server="bridge", offer="deflate") if memory else None
    ratio = memory.cell(row, "/plain") if memory else None
    text = ""
    if memory is not None and row is not None:
        text = f"{row[memory.column('KiB/conn')]} KiB, accepted {row[memory.column('accepted')]}"
    measure = "browser-like clients (offering compression): bridge's memory per idle connection"
    goals.append(_ratio_goal(measure, f"≤ {NOISE:.2f}x plain clients", ratio, NOISE, text))
    return goals


def producer_goals(tables: list[Table]) -> list[Goal]:
    table = tables[0] if tables else None

    def starting(prefix: str) -> list[str] | None:
        if table is None:
            return None
        return next((r for r in table.rows if r[0].lower().startswith(prefix)), None)

    def p50(row: list[str] | None) -> float | None:
        return table.cell(row, "p50 ms") if table else None

    ours, seed, kombu = p50(starting("ours:")), p50(starting("seed:")), p50(starting("kombu"))
    measure = "producer cost per event (p50)"
    goals = []
    references = (
        (seed, "seed", 0.1, "≤ 1/10 of the seed's"),
        (kombu, "kombu", 3.0, "≤ 3x bare confirmed publish"),
    )
    for base, name, limit, target in references:
        value = ours / base if ours is not None and base else None
        text = f"{_fmt(ours, ' ms', 3)} vs {name} {_fmt(base, ' ms', 3)}"
        goals.append(_ratio_goal(measure, target, value, limit, text))
    down = starting("ours, rabbitmq down")
    goal = Goal("when RabbitMQ is down", "bounded, and the event is not lost")
    if table is not None and down is not None:
        worst = table.cell(down, "max ms")
        note = down[table.column("note")] if "note" in table.headers else ""
        lost = re.search(r"(\d+)/(\d+) events lost", note, re.IGNORECASE)
        never = lost is None and "lost" not in note.lower()
        kept = (lost is not None and int(lost[1]) == 0) or never
        goal.measured = f"longest save {_fmt(worst, ' ms', 0)}; {note[:240]}"
        goal.met = worst is not None and worst < DOWN_BOUND_MS and kept
        goal.note = f"bounded: under {DOWN_BOUND_MS:,} ms"
    goals.append(goal)
    return goals


#: "Bounded" for a save while RabbitMQ is down: under this, in ms.
DOWN_BOUND_MS = 1000


def goals_table(goals: list[Goal]) -> list[str]:
    out = [
        "| measure | goal | measured | ratio | result | note |",
        "|---|---|---|---|---|---|",
    ]
    for g in goals:
        cells = (g.measure, g.target, g.measured, g.ratio, g.verdict, g.note)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


#: memory.py --capacity's table titles (memory.STEPS_TITLE, memory.FAN_OUT_TITLE).
CAPACITY_STEPS = "Connections, step by step"
FAN_OUT = "One event to every client"
#: Idle connections one bridge process should hold (issue 17).
CAPACITY = 100_000


def capacity_goals(tables: list[Table], lines: Sequence[str]) -> list[Goal]:
    goal = Goal("capacity: idle connections one bridge process holds", f"≥ {CAPACITY:,}")
    steps = titled(tables, CAPACITY_STEPS)
    held = steps.cell(steps.rows[-1], "connections") if steps and steps.rows else None
    if steps is None or held is None:
        return [goal]
    mib = steps.cell(steps.rows[-1], "server MiB")
    # The settled reading, printed above the tables; the steps' own are not settled.
    settled = next((m for line in lines if (m := re.search(r"([\d.]+) KiB per conn", line))), None)
    kib = float(settled[1]) if settled else steps.cell(steps.rows[-1], "KiB/conn")
    goal.measured = f"{held:,.0f} connections, {_fmt(mib, ' MiB', 0)}, {_fmt(kib, ' KiB')} each"
    goal.measured += fan_out_measured(titled(tables, FAN_OUT))
    goal.ratio, goal.met = f"{held / CAPACITY:.2f}", held >= CAPACITY
    goal.note = next((line for line in lines if line.startswith("stopped by: ")), "")
    return [goal]


def fan_out_measured(table: Table | None) -> str:
    """The median fan-out of one event to every client, as the goal's text shows it."""
    row = table.find(event="median") if table else None
    if table is None or row is None:
        return ""
    p50, p99, last = (table.cell(row, f"{name} ms") for name in ("p50", "p99", "last"))
    return (
        f"; one event to all: p50 {_fmt(p50, ' ms', 0)}, p99 {_fmt(p99, ' ms', 0)}, "
        f"last {_fmt(last, ' ms', 0)}"
    )


#: workers.py's summary title.
WORKERS = "Highest sustained rate, by workers"


def workers_goals(tables: list[Table]) -> list[Goal]:
    """``serve --workers 2`` against 1: a measure without a goal, as the capacity was."""
    table = titled(tables, WORKERS)
    one = table.find(server="1 worker", batch="off") if table else None
    two = table.find(server="2 workers", batch="off") if table else None
    clients = f"{int(table.cell(one, 'clients') or 0):,} clients" if table and one else "clients"
    goal = Goal(
        f"serve --workers 2 / --workers 1, highest sustained rate, {clients}, load generator "
        "on the same 2 cores",
        "none (a measure)",
    )
    if table is None or one is None or two is None:
        return [goal]
    found, first, second = table, one, two  # narrowed, for the closure

    def cells(name: str) -> tuple[str, str]:
        return second[found.column(name)], first[found.column(name)]

    rates, mine = cells("max rate"), [table.cell(r, "max rate") for r in (two, one)]
    goal.measured = (
        f"{rates[0]} vs {rates[1]} events/s ({' vs '.join(cells('deliveries/s'))} deliveries/s); "
        f"server {' vs '.join(cells('µs/delivery'))} µs/delivery, p99 "
        f"{' vs '.join(cells('p99 ms'))} ms; load generator {' vs '.join(cells('gen cores'))} "
        "of 2 cores"
    )
    if mine[0] is not None and mine[1] and not rates[1].startswith("<"):
        goal.ratio = _fmt(mine[0] / mine[1])
    stopped = cells("stopped by")
    goal.note = f"2 workers stopped by {stopped[0]}; 1 worker by {stopped[1]}"
    return [goal]


def audiences_goals(tables: list[Table]) -> list[Goal]:
    """Issue 18: all, role and user within 5 % of the version before channels; the
    channel's figure, measured."""
    table = titled(tables, AUDIENCES)
    goals = []
    for audience in ("all", "role", "user"):
        row = table.find(audience=audience) if table else None
        before, now = (table.cell(row, c) if table else None for c in ("before µs", "now µs"))
        goals.append(
            _ratio_goal(
                f"CPU per delivered event, audience {audience}, now / before channels "
                "(1,000 clients, 40 events/s)",
                "<= 1.05",
                now / before if now is not None and before else None,
                1.05,
                f"{_fmt(now)} vs {_fmt(before)} µs",
            )
        )
    row = table.find(audience="channel") if table else None
    goal = Goal(
        "CPU per delivered event, audience channel (1,000 clients, 40 events/s)", "none (a measure)"
    )
    if table is not None and (now := table.cell(row, "now µs")) is not None:
        goal.measured = f"{_fmt(now)} µs"
    goals.append(goal)
    return goals


def all_goals(tables: dict[str, list[Table]], runs: Sequence[Run]) -> list[Goal]:
    makers: dict[str, Callable[[list[Table]], list[Goal]]] = {
        "delivery": delivery_goals,
        "memory": memory_goals,
        "producer": producer_goals,
        "workers": workers_goals,
        "floor": floor_goals,
        "audiences": audiences_goals,
    }
    goals = []
    for name, make in makers.items():
        goals += make(tables.get(name, []))
    lines = next((run.lines for run in runs if run.name == "capacity"), [])
    return goals + capacity_goals(tables.get("capacity", []), lines)


# The document


def script_section(run: Run, how: str, tables: list[Table]) -> list[str]:
    """The script's tables, each under its title, and what it printed after them, verbatim."""
    status = "" if run.returncode == 0 else f" (**exit {run.returncode}**)"
    script, arguments = COMMANDS.get(run.name, (run.name, ()))
    out = [f"## `bench/{' '.join((f'{script}.py', *arguments))}`{status}", "", how, ""]
    if not tables:
        return [*out, "No table was printed. Its output:", "", "```", run.output, "```", ""]
    out += [f"It took {run.seconds:.0f} s.", ""]
    for k, table in enumerate(tables):
        if table.title:
            out += [f"### {table.title}", ""]
        out += ["```", table.text, "```", ""]
        following = (
            tables[k + 1].start - (1 if tables[k + 1].title else 0)
            if k + 1 < len(tables)
            else len(run.lines)
        )
        rest = "\n".join(run.lines[table.end : following]).strip("\n")
        if rest:
            out += ["```", rest, "```", ""]
    return out


def markdown(
    runs: list[Run],
    tables: dict[str, list[Table]],
    started: str,
    load: list[str],
    goals: list[Goal],
) -> str:
    total = sum(r.seconds for r in runs)
    out = [
        "# Benchmarks",
        "",
        f"Written by `bench/run` (`bench/report.py`) on {started}, in {total / 60:.1f} min; "
        "each script ran with its defaults. See `bench/README.md` for what each one does "
        "and how to read it. This is a shared machine: compare ratios from the same run, "
        "not absolute numbers across runs.",
        "",
        "![Server CPU per delivered event, highest sustained rates, memory per idle "
        "connection](benchmarks.png)",
        "",
        "## Against the floor",
        "",
        "Server CPU per delivered event at 1,000 clients, divided by the floor's in the "
        "same run: a server that writes one prebuilt frame to every client's transport and "
        "does nothing else (`bench/baseline_floor.py`: no acks, no routing, no history). "
        "1.00x is the least a Python server on asyncio spends for one write per event and "
        "client; coalescing a burst into one write, or `?batch=1`, goes below it. From "
        "`delivery.py`, one measurement each:",
        "",
        *headline(titled(tables.get("delivery", []), FIXED)),
        "",
        "The bridge and the floor taking turns (`floor.py`, medians of the rounds):",
        "",
        *floor_headline(titled(tables.get("floor", []), FLOOR)),
        "",
        "## The goals, from this run",
        "",
        "Computed by `bench/report.py` from the tables below; ratios are ours / theirs "
        "(for the rates, and the browser-like row: ours / the reference).",
        "",
        *goals_table(goals),
        "",
        "## Machine and versions",
        "",
        *load,
        "",
        "As printed by each script:",
        "",
    ]
    for run in runs:
        script, arguments = COMMANDS.get(run.name, (run.name, ()))
        title = " ".join((f"{script}.py", *arguments))
        out += [f"`{title}`:", "", "```", *preamble(run, tables[run.name]), "```", ""]
    hows = dict(SCRIPTS)
    for run in runs:
        out += script_section(run, hows[run.name], tables[run.name])
    return "\n".join(out)


# The plot


def plot(tables: dict[str, list[Table]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig = plt.figure(figsize=(14, 10))
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1), width_ratios=(3, 2))
    cpu, rates, memory = (
        fig.add_subplot(grid[0, :]),
        fig.add_subplot(grid[1, 0]),
        fig.add_subplot(grid[1, 1]),
    )
    delivery = tables.get("delivery", [])
    plot_cpu(cpu, titled(delivery, FIXED), titled(delivery, BROWSER))
    plot_rates(rates, titled(delivery, LADDERS))
    mem = tables.get("memory", [])
    plot_memory(memory, mem[0] if mem else None)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(ax: Axes, groups: list[str], series: dict[str, dict[str, float]], fmt: str) -> None:
    width = 0.8 / max(len(series), 1)
    for k, (label, values) in enumerate(series.items()):
        xs = [
            i + (k - (len(series) - 1) / 2) * width
            for i, group in enumerate(groups)
            if group in values
        ]
        bars = ax.bar(xs, [values[g] for g in groups if g in values], width, label=label)
        ax.bar_label(bars, fmt=fmt, fontsize=7)
    ax.set_xticks(range(len(groups)), groups)


def plot_cpu(ax: Axes, fixed: Table | None, browser: Table | None) -> None:
    if fixed is None:
        ax.text(0.5, 0.5, "delivery.py printed no table", ha="center")
        return
    series: dict[str, dict[str, float]] = {}
    groups: list[str] = []
    for table, suffix in ((fixed, ""), (browser, ", browser-like")):
        if table is None:
            continue
        s, b, r, us = (table.column(c) for c in ("server", "batch", "rate", "µs/event"))
        for row in table.rows:
            label = row[s] + (" ?batch=1" if row[b] == "on" else "")
            group = f"{row[r]} events/s{suffix}"
            value = number(row[us])
            if value is not None and not math.isnan(value):
                series.setdefault(label, {})[group] = value
                groups += [group] if group not in groups else []
    _bars(ax, groups, series, "%.0f")
    # Log scale: the slowest baselines spend 10-30x what the fastest do.
    ax.set_yscale("log")
    ax.set_ylabel("server CPU per delivered event (µs, log)")
    ax.set_title(
        "delivery.py: server CPU per delivered event, 1,000 clients (lower is better); "
        "browser-like clients offer permessage-deflate, +deflate servers accept it"
    )
    ax.legend(fontsize=8, ncol=2)


def plot_rates(ax: Axes, ladders: Table | None) -> None:
    if ladders is None:
        ax.text(0.5, 0.5, "delivery.py printed no highest-rate table", ha="center")
        return
    s, c, m = (ladders.column(x) for x in ("server", "clients", "max rate"))
    series: dict[str, dict[str, float]] = {}
    servers: list[str] = []
    none: dict[str, list[str]] = {}
    for row in ladders.rows:
        value = number(row[m]) if not row[m].startswith("<") else None
        label = f"{int(row[c]):,} clients"
        if value is not None:
            series.setdefault(label, {})[row[s]] = value
        else:
            # No step sustained (or the ladder did not run): said below the bars.
            none.setdefault(row[s], []).append(f"{label}: {row[m] if row[m] != '-' else 'n/a'}")
        servers += [row[s]] if row[s] not in servers else []
    _bars(ax, servers, series, "%g")
    ax.set_yscale("log")
    ax.set_xticks(
        range(len(servers)),
        [name + "".join(f"\n{text}" for text in none.get(name, [])) for name in servers],
        fontsize=8,
    )
    ax.set_ylabel("events/s to every client (log)")
    ax.set_title("delivery.py: highest sustained rate (higher is better)")
    ax.legend(fontsize=8)


def plot_memory(ax: Axes, memory: Table | None) -> None:
    if memory is None:
        ax.text(0.5, 0.5, "memory.py printed no table", ha="center")
        return
    s, o, kib = (memory.column(c) for c in ("server", "offer", "KiB/conn"))
    series: dict[str, dict[str, float]] = {}
    for row in memory.rows:
        value = number(row[kib])
        if value is not None:
            series.setdefault(f"{row[o]} clients", {})[row[s]] = value
    servers = list(dict.fromkeys(row[s] for row in memory.rows))
    _bars(ax, servers, series, "%.1f")
    ax.set_ylabel("memory per idle connection (KiB)")
    ax.set_title("memory.py: per idle connection, 5,000 clients (lower is better)")
    ax.legend(fontsize=8)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    begun = time.monotonic()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = machine()
    print("\n".join(["bench/report.py: " + started, *load]), flush=True)
    names = [name for name, _ in SCRIPTS if not args.only or name in args.only]
    runs = [run_script(name) for name in names]
    tables = {run.name: parse_tables(run.lines) for run in runs}
    goals = all_goals(tables, runs)
    args.out.mkdir(parents=True, exist_ok=True)
    md, png = args.out / "benchmarks.md", args.out / "benchmarks.png"
    md.write_text(markdown(runs, tables, started, load, goals) + "\n")
    plot(tables, png)
    print("\nGoals (issue 7):")
    for goal in goals:
        print(
            f"  {goal.verdict.strip('*'):>12}  {goal.measure}: {goal.measured} (goal {goal.target})"
        )
    print(f"\nwrote {md} and {png}; the scripts took {sum(r.seconds for r in runs) / 60:.1f} min, "
          f"all of it {(time.monotonic() - begun) / 60:.1f} min")  # fmt: skip
    failed = [r.name for r in runs if r.returncode != 0 or not tables[r.name]]
    if failed:
        print(f"failed or printed no table: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
