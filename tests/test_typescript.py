"""``/client.d.ts`` types a project's own events: the real TypeScript compiler checks handlers.

The compiler is the one pinned in ``tests/typescript/package-lock.json``,
installed with ``npm ci`` into ``tests/typescript/node_modules`` on first use
(ignored by git) and reused afterwards. Without Node.js and npm they fail,
saying what to install.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge import typescript
from bridge.exceptions import HelperNameError
from schemas import Catalog, Payload
from tests.support.bridges import EVENT_BRIDGE, Served
from tests.support.httpclient import request

HERE = Path(__file__).resolve().parent / "typescript"
TSC = HERE / "node_modules" / ".bin" / "tsc"
EXAMPLE = Path(__file__).resolve().parent.parent / "example"

EVENTS = '''
from schemas import Catalog, Category, Money, Payload

catalog = Catalog()


class Order(Payload):
    id: int
    total: Money
    customer_id: int | None = None


@catalog.register("order:created")
class OrderCreated(Payload):
    """An order was placed."""

    order: Order


@catalog.register("order:shipped", Category.NOTIFICATION)
class OrderShipped(Payload):
    order: Order
    carrier: str
'''


@pytest.fixture(scope="module")
def tsc() -> Path:
    """The pinned ``tsc``, installed from the lock file if it is not yet."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        # A failure, not a skip, as for Chromium: CI must not pass without the check.
        pytest.fail(
            f"{' and '.join(missing)} not on PATH: checking client.d.ts with the TypeScript "
            "compiler needs Node.js and npm (Debian: apt-get install nodejs npm)"
        )
    lock = HERE / "package-lock.json"
    installed = HERE / "node_modules" / ".package-lock.json"  # written by npm ci
    if (
        not (TSC.exists() and installed.exists())
        or installed.stat().st_mtime < lock.stat().st_mtime
    ):
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return TSC


async def served(cwd: Path, catalog: str, state: Path) -> dict[str, str]:
    """``/client.d.ts`` and ``/client.js`` of ``event-bridge serve --catalog CATALOG`` run in
    ``cwd`` with its state in ``state`` (never the repository), by path."""
    bridge = Served("--catalog", catalog, "--state-dir", str(state), cwd=cwd)
    line = await bridge.start()
    try:
        assert f"catalog {catalog}" in line
        files = {}
        for path, kind in [
            ("/client.d.ts", "application/typescript"),
            ("/client.js", "text/javascript"),
        ]:
            reply = await request(bridge.port, "GET", path)
            assert reply.status == 200
            assert reply.headers["content-type"].startswith(kind)
            files[path] = reply.body.decode()
        return files
    finally:
        await bridge.kill()


async def served_types(cwd: Path, catalog: str, state: Path) -> str:
    """The ``/client.d.ts`` of ``event-bridge serve --catalog CATALOG`` run in ``cwd``."""
    return (await served(cwd, catalog, state))["/client.d.ts"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding ``shop/events.py`` and the ``client.d.ts`` and
    ``client.js`` its bridge serves."""
    root = tmp_path_factory.mktemp("project")
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "events.py").write_text(EVENTS)
    for path, text in asyncio.run(served(root, "shop.events", root / "state")).items():
        (root / path.lstrip("/")).write_text(text, encoding="utf-8")
    return root


def check(tsc: Path, folder: Path, code: str) -> subprocess.CompletedProcess[str]:
    (folder / "app.ts").write_text(code)
    return subprocess.run(
        [str(tsc), "--noEmit", "--strict", "--target", "es2022", "--module", "es2022",
         str(folder / "app.ts")],
        capture_output=True, text=True, timeout=120, check=False, cwd=folder,
    )  # fmt: skip


HANDLERS = """
import { connect } from "./client.js";

const bridge = connect("ws://localhost:4000/ws", { token: "t" });
bridge.onOrderCreated((data) => data.order.id.toFixed());
bridge.on("order:created", (event) => event.data.order.customerId);
bridge.on("order:shipped", (event) => event.data.carrier.toUpperCase());
// A name outside the catalog arrives untyped: its data is unknown.
bridge.on("promo", (event) => JSON.stringify(event.data));
"""


def test_handlers_of_the_projects_own_types_typecheck(tsc: Path, shop: Path) -> None:
    done = check(tsc, shop, HANDLERS)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        ('bridge.on("order:created", (event) => event.data.order.nope);', "'nope'"),
        ("bridge.onOrderCreated((data) => data.order.total.toUpperCase());", "'toUpperCase'"),
        ('bridge.on("order:shipped", (event) => event.data.order.carrier);', "'carrier'"),
        ('bridge.on("promo", (event) => event.data.anything);', "unknown"),
    ],
)
def test_a_wrong_field_is_a_type_error(tsc: Path, shop: Path, handler: str, says: str) -> None:
    code = 'import { connect } from "./client.js";\nconst bridge = connect("/ws");\n' + handler
    done = check(tsc, shop, code)
    assert done.returncode != 0
    assert says in done.stdout, done.stdout


async def test_the_seed_catalog_keeps_its_named_helpers(tsc: Path, tmp_path: Path) -> None:
    (tmp_path / "client.d.ts").write_text(
        await served_types(EXAMPLE, "api_rest.events", tmp_path / "state")
    )
    code = """
import { connect } from "./client.js";
const bridge = connect("/ws");
bridge.onReservaNueva((data) => data.reserva.id);
bridge.onNuevaSolicitud((data) => data.servicioId + data.clienteId);
bridge.onBusinessEvent((event) => event.type);
"""
    done = check(tsc, tmp_path, code)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_without_a_catalog_every_event_is_untyped(tsc: Path, tmp_path: Path) -> None:
    (tmp_path / "client.d.ts").write_text(await served_types(tmp_path, "", tmp_path / "state"))
    good = 'import { connect } from "./client.js";\nconnect("/ws").on("x", (e) => e.type);\n'
    assert check(tsc, tmp_path, good).returncode == 0
    helper = 'import { connect } from "./client.js";\nconnect("/ws").onReservaNueva(() => 0);\n'
    assert "onReservaNueva" in check(tsc, tmp_path, helper).stdout


def test_the_served_client_js_has_the_catalogs_helpers(tsc: Path, shop: Path) -> None:
    # Node loads the module the bridge served (no connection: only its table and exports).
    script = (
        'import("./client.js").then((m) => console.log(JSON.stringify('
        "[m.EVENT_TYPES, typeof m.connect])))"
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=60, check=False, cwd=shop
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "order:created": {"category": "business", "helper": "onOrderCreated"},
            "order:shipped": {"category": "notification", "helper": "onOrderShipped"},
        },
        "function",
    ]


def test_client_types_command_writes_what_the_bridge_serves(shop: Path) -> None:
    command = [EVENT_BRIDGE, "client-types", "--catalog", "shop.events"]
    printed = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=True, cwd=shop
    )
    assert printed.stdout == (shop / "client.d.ts").read_text(encoding="utf-8")
    out = shop / "built" / "client.d.ts"
    out.parent.mkdir()
    written = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=60, check=True,
        cwd=shop,
    )  # fmt: skip
    assert written.stdout == ""
    assert out.read_text(encoding="utf-8") == printed.stdout


def _catalog_of(*classes: tuple[str, str, str]) -> Catalog:
    """A catalog of (event type, payload class name, module) with one int field each."""
    catalog = Catalog()
    for event_type, name, module in classes:
        cls = type(name, (Payload,), {"__annotations__": {"n": int}, "__module__": module})
        catalog.register(event_type)(cls)
    return catalog


@pytest.mark.parametrize(
    ("classes", "says"),
    [
        ([("x:y", "BusinessEvent", "m")], "onBusinessEvent, which is the client's own"),
        ([("x:y", "ReservaNueva", "m")], "onReservaNueva, which is the client's own"),
        # Two payload classes of one name: refused when registered (tests/test_schemas.py).
    ],
)
def test_a_payload_class_that_cannot_name_a_helper_is_refused(
    classes: list[tuple[str, str, str]], says: str
) -> None:
    catalog = _catalog_of(*classes)
    for make in (typescript.client_types, typescript.client_table):
        with pytest.raises(HelperNameError, match=says):
            make(catalog)
