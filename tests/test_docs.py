"""The Python examples in the README and docs run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

EXAMPLES = [
    pytest.param(code, id=f"{doc.relative_to(ROOT)}#{n}")
    for doc in DOCS
    for n, code in enumerate(BLOCK.findall(doc.read_text()), 1)
]


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str) -> None:
    # Each in a fresh interpreter: an example may register an event type.
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
