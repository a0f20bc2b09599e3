"""Property-based fuzzing of every endpoint from the OpenAPI document: never a 5xx, never a hang."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode

from bridge.openapi import openapi
from tests.bridges import EVENT_BRIDGE, SECRET

schema = schemathesis.openapi.from_dict(openapi(version("event-bridge")))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=60
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``event-bridge serve`` on memory://, for the whole module."""
    state: Path = tmp_path_factory.mktemp("fuzz")
    proc = subprocess.Popen(
        [EVENT_BRIDGE, "serve", "--port", "0", "--jwt-secret", SECRET, "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


@schema.parametrize()
def test_no_input_gets_a_server_error_or_hangs(case: schemathesis.Case, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=5)
    assert response.status_code < 500, (response.status_code, response.text)
