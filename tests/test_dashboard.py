"""The operators' dashboard page in a real headless Chromium, against a bridge in this process.

Playwright's async API shares the event loop with the bridge, so the bridge
keeps serving while the test waits on the browser. Waits are Playwright's
``expect`` with a timeout, never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.async_api import Browser, Page, expect

from api_rest.events import (
    NuevaSolicitud,
    Pago,
    PagoProcesado,
    Reserva,
    ReservaCreada,
    Servicio,
    ServicioCreado,
)
from bridge.app import Bridge
from bridge.auth import Authenticator
from schemas import Event, Role, User
from tests.support.bridges import SECRET, client, running, settings, token
from tests.support.browser import chromium

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
#: How long to wait for the page; stats are refreshed every 5 s, so more than that.
WAIT_MS = 10_000

#: The seed's test event, as a legacy caller posts it.
SEED_BODY = {
    "type": "reserva:creada",
    "data": {"reserva": {"id": 1, "estado": "confirmada"}},
    "timestamp": "2024-11-15T14:30:00Z",
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def bridge(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bridge]:
    """A bridge on the memory broker; parametrize indirectly to change its settings."""
    async with running(settings(tmp_path, **getattr(request, "param", {}))) as b:
        yield b


@pytest.fixture
async def page(bridge: Bridge, browser: Browser) -> AsyncIterator[Page]:
    """A 1280x800 page, closed (with its browser) before the bridge stops."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC"
    )
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors catch what breaks quietly, such as a Content-Security-Policy refusal;
    # an HTTP error status is logged there too, and the tests check those by what the page shows.
    opened.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    elsewhere: list[str] = []
    # Operators' networks may be closed: the page loads nothing but the bridge's own URLs.
    opened.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(f"http://127.0.0.1:{bridge.port}/")
            else elsewhere.append(r.url)
        ),
    )
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page reported errors: {errors}"
    assert not elsewhere, f"the page asked for other URLs: {elsewhere}"


def dashboard_url(bridge: Bridge) -> str:
    operator = bridge.authenticator.issue("operator", [], ttl=timedelta(minutes=5), monitor=True)
    return f"http://127.0.0.1:{bridge.port}/dashboard.html#token={operator}"


async def post(bridge: Bridge, endpoint: str, body: dict[str, Any]) -> str | None:
    """POST to the HTTP API as a legacy caller does; returns the event id when it gives one."""
    response = await asyncio.to_thread(
        requests.post,
        f"http://127.0.0.1:{bridge.port}/api/dashboard/{endpoint}",
        json=body,
        # Closed after the answer: no idle connection outlives the bridge in this test.
        headers={"Connection": "close"},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    given: str | None = response.json().get("id") if response.content else None
    return given


def feed_item(page: Page, event_id: str) -> Any:
    return page.locator(f'#feed > li[data-id="{event_id}"]')


#: Run before the page's own code: collects every Content-Security-Policy refusal.
COLLECT_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.violations.push(`${e.effectiveDirective} refused ${e.blockedURI}`));
"""


class Scripts(HTMLParser):
    """A page's policy, its scripts as (src, inline text), and its inline event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = ""
        self.scripts: list[tuple[str | None, str]] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.handlers += [name for name in named if name.startswith("on")]
        if tag == "meta" and named.get("http-equiv") == "Content-Security-Policy":
            self.policy = named.get("content") or ""
        if tag == "script":
            self.scripts.append((named.get("src"), ""))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            src, text = self.scripts[-1]
            self.scripts[-1] = (src, text + data)


async def test_history_then_live_events_counts_snapshot_and_broker(
    bridge: Bridge, page: Page
) -> None:
    await bridge.broker.publish(
        Event.of(
            ReservaCreada(reserva=Reserva(id=7, estado="pendiente")),
            audience=Role(role="proveedor"),
            id="h1",
        )
    )
    await page.goto(dashboard_url(bridge))

    old = feed_item(page, "h1")
    await expect(old).to_contain_text("reserva:creada", timeout=WAIT_MS)
    await expect(old).to_contain_text("role: proveedor")
    await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)
    await expect(page.locator("#broker")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#broker")).to_have_text("broker connected")
    await expect(page.locator("#instance")).to_have_text("test")

    live_id = await post(bridge, "emit-event", SEED_BODY)
    assert live_id is not None
    live = feed_item(page, live_id)
    await expect(live).to_contain_text("reserva:creada", timeout=WAIT_MS)
    await expect(live).to_contain_text("everyone")
    await expect(live.locator("time")).to_have_text("15 Nov 14:30:00")
    # Newest first, each once: the resume after the history event doubled nothing.
    await expect(page.locator("#feed > li")).to_have_count(2)
    await expect(page.locator("#feed > li").first).to_have_attribute("data-id", live_id)

    # Clicking an event shows its payload.
    payload = live.locator("pre")
    await expect(payload).to_be_hidden()
    await live.locator("summary").click()
    await expect(payload).to_be_visible()
    assert json.loads(await payload.text_content() or "") == SEED_BODY["data"]

    await post(
        bridge,
        "update-dashboard",
        {"services": {"total": 42, "activos": 37}, "clients": {"total": 120, "activos": 98}},
    )
    snap = page.locator("#snap")
    for key, number in [
        ("services.total", "42"),
        ("services.activos", "37"),
        ("clients.total", "120"),
        ("clients.activos", "98"),
    ]:
        await expect(snap.locator(f'[data-key="{key}"] .big')).to_have_text(number, timeout=WAIT_MS)

    counts = page.locator("#types")
    await expect(counts.locator('[data-type="reserva:creada"] .n')).to_have_text("2")
    await expect(counts.locator('[data-type="dashboard:update"] .n')).to_have_text("1")

    await post(
        bridge,
        "notify-user",
        {"userId": "user_123", "event": "reserva_confirmada", "payload": {"reservaId": 1}},
    )
    await expect(page.locator("#feed > li").first).to_contain_text(
        "user: user_123", timeout=WAIT_MS
    )
    await expect(counts.locator('[data-type="reserva_confirmada"] .n')).to_have_text("1")

    # Connections by role come from the stats, refreshed every few seconds.
    async with client(bridge, token=token(bridge, "p1", ("proveedor",))) as ws:
        roles = page.locator("#roles")
        await expect(roles.locator('[data-role="proveedor"] .n')).to_have_text("1", timeout=WAIT_MS)
        await expect(page.locator("#conns")).to_have_text("2 connections")
        # Who is online, every instance added up (one here), by role and by channel.
        subscribe = {"op": "subscribe", "channel": "order:42", "token": ticket("p1")}
        await ws.send(json.dumps(subscribe))
        online = page.locator("#presence-card")
        await expect(
            online.locator('#presence-channels [data-channel="order:42"] .n')
        ).to_have_text("1", timeout=WAIT_MS)
        await expect(online.locator('#presence-roles [data-role="proveedor"] .n')).to_have_text("1")
        await expect(page.locator("#presence-info")).to_contain_text("on 1 instance")


def ticket(user: str) -> str:
    """A subscription token to order:42 for ``user``."""
    return Authenticator(SECRET).issue_subscription("order:42", user, ttl=timedelta(minutes=1))


async def test_typed_and_untyped_events_are_shown_apart(bridge: Bridge, page: Page) -> None:
    await post(bridge, "emit-event", SEED_BODY)  # typed
    await post(bridge, "notify-role", {"role": "cliente", "event": "promo", "payload": {"x": 1}})
    misfit = {"role": "proveedor", "event": "nueva_solicitud", "payload": {"servicioId": 1}}
    await post(bridge, "notify-role", misfit)
    await page.goto(dashboard_url(bridge))
    counts = page.locator("#types")
    await expect(counts.locator('[data-type="promo"] .untyped')).to_have_text(
        " untyped", timeout=WAIT_MS
    )
    await expect(counts.locator('[data-type="nueva_solicitud"] .untyped')).to_have_text(" untyped")
    await expect(counts.locator('[data-type="reserva:creada"] .untyped')).to_have_count(0)
    # A name outside the catalog is marked in the feed as it arrives.
    live = await post(bridge, "emit-event", {"type": "algo:nuevo", "data": {}})
    assert live is not None
    await expect(feed_item(page, live).locator(".untyped")).to_have_text(
        " untyped", timeout=WAIT_MS
    )
    await expect(counts.locator('[data-type="algo:nuevo"] .untyped')).to_have_text(" untyped")


async def test_event_text_is_shown_as_text_never_as_html(bridge: Bridge, page: Page) -> None:
    await page.goto(dashboard_url(bridge))
    await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)
    hostile = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"
    event_id = await post(
        bridge,
        "emit-event",
        {"type": "reserva:cancelada", "data": {"reserva": {"id": 3}, "motivo": hostile}},
    )
    assert event_id is not None
    item = feed_item(page, event_id)
    await expect(item).to_have_count(1, timeout=WAIT_MS)
    await item.locator("summary").click()
    shown = json.loads(await item.locator("pre").text_content() or "")
    assert shown["motivo"] == hostile
    await expect(page.locator("#feed img")).to_have_count(0)
    assert await page.evaluate("document.body.dataset.pwned") is None


async def test_it_runs_under_a_policy_that_refuses_inline_scripts(
    bridge: Bridge, page: Page
) -> None:
    response = await asyncio.to_thread(
        requests.get,
        f"http://127.0.0.1:{bridge.port}/dashboard.html",
        headers={"Connection": "close"},
        timeout=5,
    )
    served = Scripts()
    served.feed(response.text)
    directives = dict(part.strip().split(" ", 1) for part in served.policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert served.scripts, "the page has no script"
    assert all(src and not text.strip() for src, text in served.scripts), served.scripts
    assert not served.handlers

    # The whole page works, from history to live events and stats, with nothing refused.
    await page.add_init_script(COLLECT_VIOLATIONS)
    await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=1)), id="c1"))
    await page.goto(dashboard_url(bridge))
    await expect(feed_item(page, "c1")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)
    await expect(page.locator("#broker")).to_have_text("broker connected", timeout=WAIT_MS)
    live_id = await post(bridge, "emit-event", SEED_BODY)
    assert live_id is not None
    await expect(feed_item(page, live_id)).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator('#types [data-type="reserva:creada"] .n')).to_have_text("2")
    assert await page.evaluate("window.violations") == []

    # That check can fail: the policy is in force, and a refusal is collected. (Another tab,
    # so that the refusal's console error is not taken for one of the dashboard's.)
    probe = await page.context.new_page()
    await probe.add_init_script(COLLECT_VIOLATIONS)
    await probe.goto(f"http://127.0.0.1:{bridge.port}/dashboard.html")
    await probe.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.ran = true";
          document.body.append(script);
        }"""
    )
    await probe.wait_for_function("window.violations.length > 0", timeout=WAIT_MS)
    assert await probe.evaluate("window.violations") == ["script-src-elem refused inline"]
    assert await probe.evaluate("window.ran") is None


async def test_it_reconnects_and_resumes_without_losing_or_doubling(
    bridge: Bridge, page: Page
) -> None:
    await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=1)), id="a1"))
    await page.goto(dashboard_url(bridge))
    await expect(feed_item(page, "a1")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)
    first = next(iter(bridge.hub.sessions))

    bridge.hub.close_all(1001, "restarting")
    # Published while the page is away: it must come back through the resume.
    await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=2)), id="a2"))
    await expect(feed_item(page, "a2")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)
    assert first not in bridge.hub.sessions

    await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=3)), id="a3"))
    await expect(feed_item(page, "a3")).to_have_count(1, timeout=WAIT_MS)
    ids = await page.locator("#feed > li").evaluate_all("els => els.map(e => e.dataset.id)")
    assert ids == ["a3", "a2", "a1"]


@pytest.mark.parametrize("bridge", [{"history_size": 3}], indirect=True)
async def test_a_reset_reloads_the_history(bridge: Bridge, page: Page) -> None:
    await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=0)), id="r0"))
    await page.goto(dashboard_url(bridge))
    await expect(feed_item(page, "r0")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)

    bridge.hub.close_all(1001, "restarting")
    # More than the history keeps: "r0" is gone, so the resume gets bridge:reset.
    for n in range(1, 6):
        await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"r{n}"))
    await expect(feed_item(page, "r5")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#feed > li")).to_have_count(3)
    ids = await page.locator("#feed > li").evaluate_all("els => els.map(e => e.dataset.id)")
    assert ids == ["r5", "r4", "r3"]


async def test_without_a_token_it_says_how_to_get_one(bridge: Bridge, page: Page) -> None:
    await page.goto(f"http://127.0.0.1:{bridge.port}/dashboard.html")
    gate = page.locator("#gate")
    await expect(gate).to_be_visible()
    await expect(gate).to_contain_text("needs a token")
    await expect(gate).to_contain_text("event-bridge serve")
    await expect(gate).to_contain_text("/dashboard.html#token=")
    await expect(page.locator("#board")).to_be_hidden()


async def test_a_refused_token_says_so(bridge: Bridge, page: Page) -> None:
    expired = bridge.authenticator.issue("operator", [], ttl=timedelta(seconds=-10), monitor=True)
    await page.goto(f"http://127.0.0.1:{bridge.port}/dashboard.html#token={expired}")
    gate = page.locator("#gate")
    await expect(gate).to_be_visible(timeout=WAIT_MS)
    await expect(gate).to_contain_text("token was refused")
    await expect(gate).to_contain_text("token expired")


async def test_screenshot_of_a_busy_dashboard(bridge: Bridge, page: Page, tmp_path: Path) -> None:
    """A busy dashboard: several types and audiences, a dashboard update.

    With UPDATE_SCREENSHOTS=1 the picture replaces docs/dashboard.png.
    """
    now = datetime.now(UTC)
    earlier = [
        (NuevaSolicitud(servicio_id=12, cliente_id=301), Role(role="proveedor")),
        (ReservaCreada(reserva=Reserva(id=480, cliente_id=298, estado="pendiente")), None),
        (ServicioCreado(servicio=Servicio(id=12, nombre="Limpieza profunda", precio=45.0)), None),
        (ReservaCreada(reserva=Reserva(id=481, cliente_id=301, estado="pendiente")), None),
        (
            PagoProcesado(pago=Pago(id=77, reserva_id=479, estado="aprobado", metodo="tarjeta")),
            User(user="user_123"),
        ),
    ]
    for n, (payload, audience) in enumerate(earlier):
        moment = now - timedelta(seconds=53 * (len(earlier) - n) + 17)
        await bridge.broker.publish(Event.of(payload, audience=audience, timestamp=moment))
    async with AsyncExitStack() as stack:
        for n, roles in enumerate([("proveedor",)] * 3 + [("cliente",)] * 5 + [("admin",)]):
            await stack.enter_async_context(client(bridge, token=token(bridge, f"u{n}", roles)))
        await page.goto(dashboard_url(bridge))
        await expect(page.locator("#ws")).to_have_text("connected", timeout=WAIT_MS)

        await post(
            bridge,
            "update-dashboard",
            {
                "services": {"total": 148, "activos": 131},
                "clients": {"total": 2417, "activos": 1862},
            },
        )
        await post(bridge, "emit-event", SEED_BODY | {"timestamp": None})
        await post(
            bridge,
            "notify-role",
            {
                "role": "proveedor",
                "event": "nueva_reserva",
                "payload": {"reservaId": 482, "clienteNombre": "María López"},
            },
        )
        await post(
            bridge,
            "emit-event",
            {
                "type": "calificacion:creada",
                "data": {"calificacion": {"id": 93, "puntuacion": 5, "servicioId": 12}},
            },
        )
        await post(
            bridge,
            "emit-event",
            {
                "type": "servicio:actualizado",
                "data": {"servicio": {"id": 12, "precio": 39.9}},
            },
        )
        await post(
            bridge,
            "notify-user",
            {"userId": "user_123", "event": "reserva_confirmada", "payload": {"reservaId": 481}},
        )
        await post(
            bridge,
            "emit-event",
            {"type": "cliente:nuevo", "data": {"cliente": {"id": 302, "nombre": "jperez"}}},
        )
        await expect(page.locator("#feed > li")).to_have_count(12, timeout=WAIT_MS)
        await expect(page.locator('#roles [data-role="cliente"] .n')).to_have_text(
            "5", timeout=WAIT_MS
        )
        await page.locator("#feed > li").nth(2).locator("summary").click()
        await page.mouse.move(0, 0)
        target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "dashboard.png"
        await page.screenshot(path=str(target), animations="disabled")
        assert target.stat().st_size > 10_000
