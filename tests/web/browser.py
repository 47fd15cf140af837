"""Debian's headless Chromium driven by Playwright (never a downloaded browser), for the web inbox tests."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

# Waiting for the page (not a timing assertion): generous, as parallel test runs share two cores.
expect.set_options(timeout=15_000)

CHROMIUM = os.environ.get("VM2MAIL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".work" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The test clicks "play" and the page decrypts first: no user-gesture window to miss.
    "--autoplay-policy=no-user-gesture-required",
    # A fake microphone (a beep) and no permission prompt, for recording a greeting.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@contextlib.asynccontextmanager
async def chromium_page(*, echo: bool = True) -> AsyncIterator[Page]:
    """A fresh page in a new, empty profile; with ``echo`` the page's console is printed for diagnosis."""
    with tempfile.TemporaryDirectory(prefix="vm2mail-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                permissions=["microphone"],
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                if echo:
                    page.on("console", lambda m: print(f"[browser {m.type}] {m.text}"))
                    page.on("pageerror", lambda e: print(f"[browser error] {e}"))
                yield page
            finally:
                await context.close()


async def screenshot(page: Page, name: str, config: pytest.Config | None = None) -> Path:
    """Write ``.work/screenshots/<name>.png`` and say where, past pytest's output capture."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    line = f"screenshot of the inbox: {path}"
    capture = config.pluginmanager.get_plugin("capturemanager") if config is not None else None
    if capture is None:
        print(line)
        return path
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)
    return path
