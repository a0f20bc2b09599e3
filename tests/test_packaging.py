"""The extras install what each side needs and nothing of the other's (issue 15).

The wheel is built and installed, as a team would install it, into two fresh
virtual environments: ``event-bridge[django]`` for a web app, whose Django app
works and which has no WebSocket server libraries, and ``event-bridge[server]``
for the bridge's image, whose command works and which has no Django. Versions
come from ``uv.lock`` (as constraints), so the run is the one CI locks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
#: Seconds a build or an install may take (uv's cache makes them quick after the first).
INSTALL = 300


def run(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL, check=False
    )
    if check:
        assert done.returncode == 0, f"{args}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The built wheel, and the lock's versions as a constraints file."""
    out = tmp_path_factory.mktemp("dist")
    run(UV, "build", "--wheel", "--out-dir", str(out), "--quiet")
    [built] = out.glob("event_bridge-*.whl")
    pins = out / "constraints.txt"
    exported = run(
        UV, "export", "--frozen", "--no-hashes", "--all-extras", "--no-emit-project",
        "--no-header", "--no-annotate",
    ).stdout  # fmt: skip
    pins.write_text(exported)
    return built, pins


def installed(tmp_path: Path, wheel: tuple[Path, Path], extra: str) -> Path:
    """A fresh environment with ``event-bridge[extra]`` from the wheel; its bin folder."""
    built, pins = wheel
    venv = tmp_path / extra
    run(UV, "venv", "--quiet", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    run(UV, "pip", "install", "--quiet", "--python", python, "--constraint", str(pins),
        f"event-bridge[{extra}] @ {built.as_uri()}")  # fmt: skip
    return venv / "bin"


@pytest.mark.timeout(INSTALL * 2)
def test_the_django_extra_has_the_django_app_and_no_server(
    tmp_path: Path, wheel: tuple[Path, Path]
) -> None:
    bin_dir = installed(tmp_path, wheel, "django")
    python = str(bin_dir / "python")
    app = (
        "import django; from django.conf import settings;"
        "settings.configure(INSTALLED_APPS=['producer'], DATABASES={'default': {"
        "'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}});"
        "django.setup();"
        "from producer import WebSocketNotifier, issue_token, model_events;"
        "import producer.relay, producer.sender;"
        "print(django.get_version())"
    )
    assert run(python, "-c", app, cwd=tmp_path).stdout.strip().startswith(("4.", "5."))
    # (click comes with Celery, so both sides have it.)
    for server_only in ("websockets", "aio_pika", "h11", "prometheus_client"):
        missing = run(python, "-c", f"import {server_only}", cwd=tmp_path, check=False)
        assert missing.returncode == 1, f"{server_only} came with the django extra"
    # The command is there, and says what to install rather than show a traceback.
    command = run(str(bin_dir / "event-bridge"), "--help", cwd=tmp_path, check=False)
    assert command.returncode == 1
    assert "pip install 'event-bridge[server]'" in command.stderr
    assert "Traceback" not in command.stderr


@pytest.mark.timeout(INSTALL * 2)
def test_the_server_extra_runs_the_bridge_and_has_no_django(
    tmp_path: Path, wheel: tuple[Path, Path]
) -> None:
    bin_dir = installed(tmp_path, wheel, "server")
    python = str(bin_dir / "python")
    missing = run(python, "-c", "import django", cwd=tmp_path, check=False)
    assert missing.returncode == 1, "Django came with the server extra"
    helped = run(str(bin_dir / "event-bridge"), "serve", "--help", cwd=tmp_path)
    assert "--broker" in helped.stdout
    # A bridge that starts and answers, on the embedded broker.
    started = subprocess.Popen(
        [str(bin_dir / "event-bridge"), "serve", "--port", "0", "--state-dir", str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert started.stdout is not None
        # Log lines (on stderr, here merged) may come first: the open-file limit's.
        seen = [started.stdout.readline()]
        while not seen[-1].startswith("event-bridge: instance") and len(seen) < 5:
            seen.append(started.stdout.readline())
        assert seen[-1].startswith("event-bridge: instance"), seen
    finally:
        started.terminate()
        started.wait(15)
        if started.stdout is not None:
            started.stdout.close()
