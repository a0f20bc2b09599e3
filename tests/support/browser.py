"""Debian's Chromium, headless, driven by Playwright (whose own browser download is not used)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright

#: Without the networking flags Chromium keeps calling home, which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A running headless Chromium; fails (not skips) when it is not installed."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is not installed: the browser tests need `apt-get install chromium`.")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
