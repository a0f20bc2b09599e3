"""The example's page in Chromium: log in, connect through the bridge's /client.js, see events.

Django serves the page (pytest-django's ``live_server``); Chromium loads
``client.js`` from the bridge, gets a token from the producer's token view and
shows what the bridge sends. Playwright runs on the bridge's loop thread.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import pytest
from playwright.async_api import Page
from pytest_django.live_server_helper import LiveServer

from tests.django import factories
from tests.support.browser import chromium
from tests.support.django_live import LiveBridge

T = TypeVar("T")

#: Milliseconds the page has to show something.
WAIT_MS = 15_000


class BrowserPage:
    """One page in Chromium, driven from the synchronous test through the loop thread."""

    def __init__(self, live: LiveBridge) -> None:
        self._live = live
        self._stack = AsyncExitStack()
        self.errors: list[str] = []
        self.page: Page = live.loop.call(self._open())

    async def _open(self) -> Page:
        browser = await self._stack.enter_async_context(chromium())
        page = await browser.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        return page

    def run(self, steps: Coroutine[Any, Any, T]) -> T:
        return self._live.loop.call(steps, timeout=60)

    def close(self) -> None:
        self._live.loop.call(self._stack.aclose())


@pytest.fixture
def page_in_chromium(live: LiveBridge) -> Iterator[BrowserPage]:
    opened = BrowserPage(live)
    try:
        yield opened
    finally:
        opened.close()


async def log_in(page: Page, url: str, username: str) -> str:
    """Open ``url``, log in on the page it redirects to; the connection state the page shows."""
    await page.goto(url)
    assert "/accounts/login/" in page.url
    await page.fill("#id_username", username)
    await page.fill("#id_password", factories.PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#estado[data-state=connected]", timeout=WAIT_MS)
    return await page.inner_text("#estado")


async def shown(page: Page, event_type: str, count: int = 1) -> list[str]:
    """The texts of the first ``count`` events of ``event_type`` the page shows, newest first."""
    selector = f'#eventos li[data-type="{event_type}"]'
    await page.wait_for_function(
        f"document.querySelectorAll('{selector}').length >= {count}", timeout=WAIT_MS
    )
    return [await item.inner_text() for item in await page.query_selector_all(selector)]


async def book(page: Page) -> str:
    await page.fill("#reserva input[name=hora]", "09:30")
    await page.click("#reserva button[type=submit]")
    await page.wait_for_function(
        "document.getElementById('reserva-resultado').textContent !== ''", timeout=WAIT_MS
    )
    return await page.inner_text("#reserva-resultado")


@pytest.mark.django_db(transaction=True)
def test_the_page_logs_in_and_shows_live_events(
    live: LiveBridge,
    live_server: LiveServer,
    page_in_chromium: BrowserPage,
    settings: Any,
    event_bridge: dict[str, Any],
) -> None:
    settings.EVENT_BRIDGE = {**event_bridge, "BRIDGE_URL": live.ws_url}
    ana = factories.cliente("ana")
    browser = page_in_chromium
    page = browser.page

    state = browser.run(log_in(page, f"{live_server.url}/", "ana"))
    assert state.startswith(f"conectado como {ana.user.pk} (cliente)")

    # A booking saved anywhere in Django shows up.
    reserva = factories.reserva(ana)
    [text] = browser.run(shown(page, "reserva:creada"))
    assert f'"id": {reserva.id},' in text
    assert '"hora": "14:30:00"' in text

    # The page's own form posts to the seed's crear_reserva endpoint.
    result = browser.run(book(page))
    booked = re.fullmatch(r"reserva (\d+) creada", result)
    assert booked is not None, result
    texts = browser.run(shown(page, "reserva:creada", count=3))
    assert all(f'"id": {booked[1]},' in text for text in texts[:2])
    assert browser.run(page.locator('#eventos li[data-type="nueva_reserva"]').count()) == 0
    assert browser.errors == []
