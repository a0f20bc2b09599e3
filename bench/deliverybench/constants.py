"""The delivery benchmark's constants: paths, cores, timeouts, servers, ladder thresholds."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: ``bench/``.
BENCH = Path(__file__).resolve().parent.parent
#: The servers' environment: the example project's catalog (api_rest.events) is importable.
SERVER_ENV = {**os.environ, "PYTHONPATH": str(BENCH.parent / "example")}
BASELINES = BENCH / "baselines"

HOST = "127.0.0.1"
SERVER_CORE = 0
GENERATOR_CORE = 1
#: A fresh one per run; the benchmark's clients are anonymous anyway.
JWT_SECRET = secrets.token_urlsafe(32)
VHOST_PREFIX = "event-bridge-bench-"
BRIDGE_INSTANCE = "bench"

# Timeouts, in seconds: every wait in the benchmark is bounded.
RABBITMQCTL_TIMEOUT = 60
SERVER_START_TIMEOUT = 30
SERVER_STOP_TIMEOUT = 12
CONNECT_TIMEOUT = 15
CONFIRM_TIMEOUT = 10
#: Percent load of a core, before the run, above which the report warns.
BUSY = 20.0
#: A scenario's delivery is over once nothing arrived for this long.
QUIET_PERIOD = 2.0
#: The next scenario starts once no frame arrived for this long (see ``settle``), or
#: for BEHIND_QUIET after a scenario whose deliveries were not all in.
SETTLE_QUIET = 0.5
BEHIND_QUIET = 2.0
#: Every server, in the order they run. The ``+deflate`` ones accept compression and
#: run only with browser-like clients.
SERVERS = (
    "floor", "baseline", "baseline+deflate", "bridge", "bridge+sse", "bridge+deflate", "socketio",
    "channels", "nestjs",
)  # fmt: skip
#: The baselines of the ratio columns.
BASELINE_SERVERS = ("floor", "baseline", "socketio", "channels", "nestjs")

# The highest sustained rate.
#: A step is sustained if its publisher kept at least this share of the rate asked for.
RATE_KEPT = 0.95
#: Percent of a core from which a process or a core counts as saturated.
SATURATED = 90.0
#: Bisect between the highest passing and the lowest failing step while they are
#: further apart than this factor, at most MAX_BISECTIONS times.
BISECT_ABOVE = 1.5
MAX_BISECTIONS = 2
#: A ladder step publishes at least this many events, however low its rate.
MIN_STEP_EVENTS = 5
#: Longest wait for ``build.sh`` of the NestJS baseline (``npm ci`` on a fresh clone).
BUILD_TIMEOUT = 600
#: What ``versions()`` names beside websockets and aio-pika.
BENCH_PACKAGES = (
    "python-socketio", "python-engineio", "aiohttp", "channels", "daphne", "channels-redis",
    "redis",
)  # fmt: skip
REDIS_URL = "redis://127.0.0.1:6379/0"
