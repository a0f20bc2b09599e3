"""Property-based fuzzing of every endpoint from the OpenAPI document the bridge serves.

Every schemathesis check runs on every response (no 5xx, status codes,
headers and bodies as documented, valid data accepted, invalid data
refused, and, with ``--api-key``, no POST accepted without the key), against
a real ``event-bridge serve`` with and without an API key.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.schemas import BaseSchema

from api_rest.events import catalog
from bridge.openapi import openapi
from schemas import Reader
from tests.support.bridges import EVENT_BRIDGE, SECRET
from tests.support.httpclient import request

API_KEY = "fuzz-api-key-0123456789"
#: The bridges run with the seed's catalog, from the example project's folder.
EXAMPLE = Path(__file__).resolve().parent.parent / "example"
READER = Reader(catalog)


def _serve(state: Path, *args: str) -> Iterator[str]:
    """A real ``event-bridge serve`` on memory://; yields its base URL.

    Rate limits are off: a 429 would keep what the fuzzer sends from the code
    it means to reach (tests/test_api.py floods a limited bridge).
    """
    limits = ("--api-rate-per-ip", "0", "--api-rate-per-key", "0")
    proc = subprocess.Popen(
        [
            EVENT_BRIDGE,
            "serve",
            "--port",
            "0",
            "--jwt-secret",
            SECRET,
            "--state-dir",
            str(state),
            *limits,
            "--catalog",
            "api_rest.events",
            *args,
        ],
        cwd=EXAMPLE,
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


@pytest.fixture(scope="module")
def open_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("fuzz-open"))


@pytest.fixture(scope="module")
def keyed_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("fuzz-keyed"), "--api-key", API_KEY)


def _schema(*, api_key: bool) -> BaseSchema:
    """The OpenAPI document the bridge serves (``GET /openapi.json``), with or without a key."""
    schema = schemathesis.openapi.from_dict(
        openapi(version("event-bridge"), READER, api_key=api_key)
    )
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=30
    )
    return schema


OPEN, KEYED = _schema(api_key=False), _schema(api_key=True)


@OPEN.parametrize()
def test_every_check_passes_without_an_api_key(case: schemathesis.Case, open_url: str) -> None:
    case.call_and_validate(base_url=open_url, timeout=5)


@KEYED.parametrize()
def test_every_check_passes_with_an_api_key(case: schemathesis.Case, keyed_url: str) -> None:
    case.call_and_validate(base_url=keyed_url, headers={"X-API-Key": API_KEY}, timeout=5)


async def test_the_fuzzed_document_is_the_one_served(open_url: str, keyed_url: str) -> None:
    for url, api_key in ((open_url, False), (keyed_url, True)):
        port = int(url.rpartition(":")[2])
        served = (await request(port, "GET", "/openapi.json")).json()
        assert served == openapi(version("event-bridge"), READER, api_key=api_key)
