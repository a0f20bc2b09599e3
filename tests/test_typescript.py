"""``/client.d.ts`` types a project's own events: the real TypeScript compiler checks handlers.

The compiler is the one pinned in ``tests/typescript/package-lock.json``,
installed with ``npm ci`` on first use (``node_modules`` is not committed).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bridges import Served
from tests.http import request

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
    if shutil.which("npm") is None:
        pytest.fail("npm is not on PATH: the TypeScript tests need Node.js and npm")
    lock = HERE / "package-lock.json"
    installed = HERE / "node_modules" / ".package-lock.json"
    if not TSC.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
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


async def served_types(cwd: Path, catalog: str) -> str:
    """The ``/client.d.ts`` of ``event-bridge serve --catalog CATALOG`` run in ``cwd``."""
    bridge = Served("--catalog", catalog, "--state-dir", str(cwd / "state"), cwd=cwd)
    line = await bridge.start()
    try:
        assert f"catalog {catalog}" in line
        reply = await request(bridge.port, "GET", "/client.d.ts")
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("application/typescript")
        return reply.body.decode()
    finally:
        await bridge.kill()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding ``shop/events.py`` and the ``client.d.ts`` its bridge serves."""
    root = tmp_path_factory.mktemp("project")
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "events.py").write_text(EVENTS)
    (root / "client.d.ts").write_text(asyncio.run(served_types(root, "shop.events")))
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
    (tmp_path / "client.d.ts").write_text(await served_types(EXAMPLE, "api_rest.events"))
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
    (tmp_path / "client.d.ts").write_text(await served_types(tmp_path, ""))
    good = 'import { connect } from "./client.js";\nconnect("/ws").on("x", (e) => e.type);\n'
    assert check(tsc, tmp_path, good).returncode == 0
    helper = 'import { connect } from "./client.js";\nconnect("/ws").onReservaNueva(() => 0);\n'
    assert "onReservaNueva" in check(tsc, tmp_path, helper).stdout
