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

from api_rest.events import catalog
from schemas import Reader
from tests.support.seed import curls

EVENT_BRIDGE = str(Path(sys.executable).parent / "event-bridge")
EXAMPLE = Path(__file__).resolve().parent.parent / "example"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENT_BRIDGE, *args], capture_output=True, text=True, check=False, timeout=30, cwd=cwd
    )


@pytest.fixture(scope="module")
def event_schema() -> dict[str, Any]:
    # Run beside the example project, as its README says: its catalog is importable there.
    done = run("schema", "--catalog", "api_rest.events", cwd=EXAMPLE)
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(done.stdout)
    return schema


def test_help_lists_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "Commands:" in done.stdout
    assert re.search(r"schema\s+Print the JSON Schema of every event type", done.stdout)


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
        received = json.loads(Reader(catalog).body(curl.endpoint, curl.body).to_json())
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


def test_a_catalog_that_cannot_be_loaded_exits_2_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text("from schemas import Catalog\na = Catalog()\nb = Catalog()\n")
    for spec, says in [
        ("nowhere.events", "cannot import 'nowhere.events'"),
        ("two", "must hold one Catalog (found: a, b)"),
        ("two:c", "two has no Catalog named 'c'"),
    ]:
        done = run("schema", "--catalog", spec, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert says in done.stderr
        assert "Traceback" not in done.stderr


def test_strict_events_without_a_catalog_is_bad_configuration() -> None:
    done = run("serve", "--strict-events", "--port", "0")
    assert done.returncode == 2
    assert "--strict-events refuses every type outside the catalog: give --catalog" in done.stderr


def test_without_a_catalog_the_schema_is_the_untyped_event() -> None:
    done = run("schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    Draft202012Validator.check_schema(schema)
    anything = {"id": "1", "type": "promo", "data": [1, {"a": None}],
                "timestamp": "2024-11-15T14:30:00Z", "audience": {"kind": "all"}}  # fmt: skip
    assert Draft202012Validator(schema).is_valid(anything)
