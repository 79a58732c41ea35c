"""Debian's headless Chromium driven by Playwright, for the web page's tests. No browser is ever downloaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
#: Without the background-networking flags Chromium keeps dialling Google's hosts, which this machine refuses.
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

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium ({CHROMIUM}) is absent")


@asynccontextmanager
async def open_page(
    *, timeout_ms: int, viewport: dict[str, int] | None = None, bypass_csp: bool = True, **context_options: Any
) -> AsyncIterator[Any]:
    """A fresh page in a fresh browser; fails the test if the page raised a JavaScript error.

    ``bypass_csp``: the page's Content-Security-Policy forbids ``eval``, which Playwright's string predicates
    (``wait_for_function("…")``) use, so tests bypass it by default; the sanitiser is then tested on its own, and a
    test that checks the policy itself opens the page with ``bypass_csp=False``.
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport=viewport or {"width": 1100, "height": 760}, bypass_csp=bypass_csp, **context_options
            )
            page = await context.new_page()
            page.set_default_timeout(timeout_ms)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            await browser.close()
