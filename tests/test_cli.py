"""The installed ``event-bridge`` command, run as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schemas.requests import ENDPOINTS
from tests.seed import curls

EVENT_BRIDGE = str(Path(sys.executable).parent / "event-bridge")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENT_BRIDGE, *args], capture_output=True, text=True, check=False, timeout=30
    )


@pytest.fixture(scope="module")
def event_schema() -> dict[str, Any]:
    done = run("schema")
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(done.stdout)
    return schema


def test_help_lists_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "Commands:" in done.stdout
    assert re.search(r"schema\s+Print the JSON Schema of every event.", done.stdout)


def test_an_unknown_command_exits_2_and_says_so() -> None:
    done = run("serv")
    assert done.returncode == 2
    assert "No such command 'serv'" in done.stderr


def test_the_schema_is_valid_json_schema(event_schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(event_schema)
    assert event_schema["discriminator"]["propertyName"] == "type"


def test_every_seed_event_as_browsers_receive_it_fits_the_schema(
    event_schema: dict[str, Any],
) -> None:
    validator = Draft202012Validator(event_schema)
    for curl in curls():
        received = json.loads(ENDPOINTS[curl.endpoint].read(curl.body).to_json())
        assert list(validator.iter_errors(received)) == [], curl.endpoint


@pytest.mark.parametrize(
    "event",
    [
        {"type": "reserva:borrada", "data": {}},
        {"type": "reserva:creada", "data": {"reserva": {"id": "1"}}},
    ],
)
def test_the_schema_rejects_what_the_bridge_rejects(
    event_schema: dict[str, Any], event: dict[str, Any]
) -> None:
    complete = {
        **event,
        "id": "1",
        "timestamp": "2024-11-15T14:30:00Z",
        "audience": {"kind": "all"},
    }
    assert not Draft202012Validator(event_schema).is_valid(complete)
