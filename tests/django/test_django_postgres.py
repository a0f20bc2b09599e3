"""The model and outbox tests again, on PostgreSQL: ``DATABASE_URL``, for real.

On PostgreSQL the relay claims rows with ``SKIP LOCKED`` and wakes on the
migration's NOTIFY trigger rather than polling.

Django is configured once per process, so the model tests run in a pytest of
their own with ``DATABASE_URL`` set, as a deployment would set it; pytest-django
creates ``test_<name>`` and drops it afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

#: The PostgreSQL the tests use; pytest-django creates (and drops) test_<its name>.
DATABASE_URL = os.environ.get(
    "EVENT_BRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ROOT = Path(__file__).resolve().parents[2]
ON_POSTGRESQL = [
    Path(__file__).parent / "test_django_models.py",
    Path(__file__).parent / "test_django_outbox.py",
]


def databases() -> set[str]:
    with psycopg.connect(DATABASE_URL, connect_timeout=5) as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}


@pytest.mark.timeout(420)
def test_the_model_and_outbox_tests_pass_on_postgresql() -> None:
    try:
        databases()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {DATABASE_URL}: {exc}")
    name = urlsplit(DATABASE_URL).path.lstrip("/")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": DATABASE_URL,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, ON_POSTGRESQL)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"example database: postgresql {name}" in done.stdout
    assert re.search(r"\d+ passed in", done.stdout)
    assert "skipped" not in done.stdout
    assert f"test_{name}" not in databases()  # dropped afterwards
