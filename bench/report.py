"""The whole benchmark in one command: runs delivery.py, memory.py and producer.py.

Each runs as a subprocess with its default settings; what it prints goes to standard
output as it runs (its progress to standard error). Then this writes
``docs/benchmarks.md`` (the date, the machine, the versions each script printed, and
each script's output verbatim) and ``docs/benchmarks.png`` (server CPU per delivered
event from delivery.py, memory per idle connection from memory.py), parsing the tables
from the printed text. ``bench/run`` runs it in the locked environment.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name, how to read its table (one line).
SCRIPTS = (
    (
        "delivery",
        "Server CPU per delivered event (`µs/event`) at 1,000 clients and fixed rates; "
        "lower is better, and the `/NAME` columns divide by NAME's at the same rate.",
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
)


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    #: The table's lines as printed: header, dashed rule, rows.
    text: str
    #: Index of the header line in the script's output.
    start: int

    def column(self, name: str) -> int:
        return self.headers.index(name)


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
    return parser.parse_args(argv)


def run_script(name: str) -> Run:
    """Run bench/NAME.py, echoing its standard output line by line and keeping it."""
    command = [sys.executable, str(ROOT / "bench" / f"{name}.py")]
    print(f"\n=== bench/{name}.py ===", flush=True)
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
    print(f"=== bench/{name}.py: exit {result.returncode}, {result.seconds:.0f} s ===", flush=True)
    return result


RULE = re.compile(r"^-+(  -+)+\s*$")


def parse_table(lines: Sequence[str]) -> Table | None:
    """The first aligned table: a header line, a rule of dashes, rows up to a blank line.

    Columns are where the rule's dashes are; the last one runs to the end of the line
    (producer.py's free-text note is wider than its rule).
    """
    for i, line in enumerate(lines):
        if i == 0 or not RULE.match(line):
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]
        spans[-1] = (spans[-1][0], None)  # type: ignore[assignment]

        def cells(text: str, spans: list = spans) -> list[str]:
            return [text[a:b].strip() for a, b in spans]

        body = []
        for row in lines[i + 1 :]:
            if not row.strip():
                break
            body.append(row)
        return Table(
            headers=cells(lines[i - 1]),
            rows=[cells(r) for r in body],
            text="\n".join([lines[i - 1], line, *body]),
            start=i - 1,
        )
    return None


def number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
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


def preamble(run: Run, table: Table | None) -> list[str]:
    """What the script printed before its table: versions, the servers' announces."""
    end = table.start if table is not None else len(run.lines)
    return [line for line in run.lines[:end] if line.strip()]


def markdown(
    runs: list[Run], tables: dict[str, Table | None], started: str, load: list[str]
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
        "![Server CPU per delivered event and memory per idle connection](benchmarks.png)",
        "",
        "## Machine and versions",
        "",
        *load,
        "",
        "As printed by each script:",
        "",
    ]
    for run in runs:
        out += [f"`{run.name}.py`:", "", "```", *preamble(run, tables[run.name]), "```", ""]
    for (name, how), run in zip(SCRIPTS, runs, strict=True):
        table = tables[name]
        status = "" if run.returncode == 0 else f" (**exit {run.returncode}**)"
        out += [f"## `bench/{name}.py`{status}", "", how, ""]
        if table is None:
            out += ["No table was printed. Its output:", "", "```", run.output, "```", ""]
            continue
        rest = "\n".join(run.lines[table.start + 2 + len(table.rows) :]).strip("\n")
        out += [
            f"{run.seconds:.0f} s. The table, then everything printed after it:",
            "",
            "```",
            table.text,
            "```",
            "",
        ]
        if rest:
            out += ["```", rest, "```", ""]
    return "\n".join(out)


def plot(tables: dict[str, Table | None], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=(3, 2))

    delivery = tables.get("delivery")
    if delivery is not None:
        s, b, r, us = (delivery.column(c) for c in ("server", "batch", "rate", "µs/event"))
        values: dict[str, dict[float, float]] = {}
        for row in delivery.rows:
            label = row[s] + (" ?batch=1" if row[b] == "on" else "")
            rate, cpu = number(row[r]), number(row[us])
            if rate is not None and cpu is not None:
                values.setdefault(label, {})[rate] = cpu
        rates = sorted({rate for v in values.values() for rate in v})
        width = 0.8 / max(len(values), 1)
        for k, (label, by_rate) in enumerate(values.items()):
            xs = [
                i + (k - (len(values) - 1) / 2) * width
                for i, rate in enumerate(rates)
                if rate in by_rate
            ]
            bars = left.bar(
                xs, [by_rate[rate] for rate in rates if rate in by_rate], width, label=label
            )
            left.bar_label(bars, fmt="%.0f", fontsize=7)
        left.set_xticks(range(len(rates)), [f"{rate:g} events/s" for rate in rates])
        # Log scale: the slowest baselines spend 10-30x what the fastest do.
        left.set_yscale("log")
        left.set_ylabel("server CPU per delivered event (µs, log scale)")
        left.set_title("delivery.py: CPU per delivered event, 1,000 clients (lower is better)")
        left.legend(fontsize=8)
    else:
        left.text(0.5, 0.5, "delivery.py printed no table", ha="center")

    memory = tables.get("memory")
    if memory is not None:
        s, o, kib = (memory.column(c) for c in ("server", "offer", "KiB/conn"))
        by: dict[str, dict[str, float]] = {}
        for row in memory.rows:
            value = number(row[kib])
            if value is not None:
                by.setdefault(row[o], {})[row[s]] = value
        servers = list(dict.fromkeys(row[s] for row in memory.rows))
        width = 0.8 / max(len(by), 1)
        for k, (offer, per) in enumerate(by.items()):
            xs = [
                i + (k - (len(by) - 1) / 2) * width for i, name in enumerate(servers) if name in per
            ]
            bars = right.bar(
                xs, [per[n] for n in servers if n in per], width, label=f"{offer} clients"
            )
            right.bar_label(bars, fmt="%.1f", fontsize=7)
        right.set_xticks(range(len(servers)), servers)
        right.set_ylabel("memory per idle connection (KiB)")
        right.set_title("memory.py: per idle connection, 5,000 clients")
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "memory.py printed no table", ha="center")

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = machine()
    print("\n".join(["bench/report.py: " + started, *load]), flush=True)
    runs = [run_script(name) for name, _ in SCRIPTS]
    tables = {run.name: parse_table(run.lines) for run in runs}
    args.out.mkdir(parents=True, exist_ok=True)
    md, png = args.out / "benchmarks.md", args.out / "benchmarks.png"
    md.write_text(markdown(runs, tables, started, load) + "\n")
    plot(tables, png)
    print(f"\nwrote {md} and {png} ({sum(r.seconds for r in runs) / 60:.1f} min)")
    failed = [r.name for r in runs if r.returncode != 0 or tables[r.name] is None]
    if failed:
        print(f"failed or printed no table: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
