"""The packages keep their boundaries: a forbidden import fails here, wherever it is written.

- ``schemas``: the events' machinery, read by both sides: the standard library
  and pydantic only.
- ``messaging``: publishing to RabbitMQ, shared by both sides: no Django, and
  neither side's package.
- ``producer`` (the Django app) and ``bridge`` (the server) never import each
  other, and the bridge never imports Django.

Every import statement counts, at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "messaging", "producer", "bridge")

#: What each package may import besides the standard library and itself.
ALLOWED: dict[str, set[str]] = {
    "schemas": {"pydantic", "pydantic_core"},
    "messaging": {"schemas", "kombu", "celery", "amqp"},
    # pytest: producer.pytest_plugin, the sent_events fixture for a project's own tests.
    "producer": {"schemas", "messaging", "django", "asgiref", "jwt", "kombu", "celery", "pytest"},
    # aio-pika (with pamqp, aiormq) consumes; kombu (with py-amqp) runs operator commands.
    "bridge": {
        "schemas", "messaging", "aio_pika", "aiormq", "pamqp", "amqp", "click", "h11", "jwt",
        "kombu", "prometheus_client", "websockets", "pydantic",
    },
}  # fmt: skip


def imports(package: str) -> Iterator[tuple[str, int, str]]:
    """(file, line, top-level module) for every import in ``package``."""
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Django writes them; they import Django only
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                yield str(path.relative_to(ROOT)), node.lineno, name.split(".")[0]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_its_layer_allows(package: str) -> None:
    allowed = ALLOWED[package] | {package, "__future__"}
    forbidden = [
        f"{path}:{line}: {module}"
        for path, line, module in imports(package)
        if module not in allowed and module not in sys.stdlib_module_names
    ]
    assert forbidden == [], f"{package} may import only {sorted(allowed)} and the standard library"


def test_the_rules_see_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same walk over a package holding one bridge -> producer import finds it.
    (tmp_path / "bridge").mkdir()
    (tmp_path / "bridge" / "leak.py").write_text("def f():\n    from producer import relay\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = [module for _, _, module in imports("bridge")]
    assert found == ["producer"]
    assert "producer" not in ALLOWED["bridge"]


def module_graph(package: str) -> dict[str, set[str]]:
    """Which of ``package``'s modules each of its modules imports, ``TYPE_CHECKING`` too."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from bridge import hub`` names a module; ``from bridge.hub import Hub`` one too.
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``, each from its first module back to it."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :]
            if sorted(cycle) not in [sorted(c) for c in found]:
                found.append([*cycle, module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_has_an_import_cycle(package: str) -> None:
    found = [" -> ".join(cycle) for cycle in cycles(module_graph(package))]
    assert found == [], "modules that import each other, even for types only"


def test_the_rules_see_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
