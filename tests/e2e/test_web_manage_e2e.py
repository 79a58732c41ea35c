"""The page's conversation controls in headless Chromium against the local stack: rename inline, export as Markdown
(built from getHistory pages), delete with a confirmation, and "Delete all my conversations"; a second tab sees each
change."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.local_stack.stack import LocalStack
from tests.browser import needs_chromium, open_page
from tests.e2e.conftest import stack_info

pytestmark = [pytest.mark.e2e, pytest.mark.browser, needs_chromium]

REPLY = "#messages li.message.assistant"


async def _signed_in(page: Any, url: str) -> None:
    await page.goto(url)
    await page.get_by_role("button", name="Use the demo account").click()
    await page.wait_for_selector("#status[data-state='connected']")


async def _ask(page: Any, text: str) -> None:
    await page.fill("#message", text)
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")


async def test_rename_export_delete_and_delete_everything_on_the_page(web_stack: LocalStack, tmp_path: Any) -> None:
    info = stack_info(web_stack)
    async with open_page(timeout_ms=20_000) as page, open_page(timeout_ms=20_000) as other:
        await _signed_in(page, info.web_url)
        await _ask(page, "# Plan a **trip** to Lisbon")
        current = page.locator("#conversations button[aria-current='true']")
        await current.filter(has_text="Plan a trip to Lisbon").wait_for()  # titled without the Markdown
        await _signed_in(other, info.web_url)
        await other.locator("#conversations button", has_text="Plan a trip to Lisbon").wait_for()

        # Rename inline; the other tab's list follows.
        await page.get_by_role("button", name="Rename").click()
        await page.fill("#rename-title", "Lisbon in May")
        await page.keyboard.press("Enter")
        await current.filter(has_text="Lisbon in May").wait_for()
        await other.locator("#conversations button", has_text="Lisbon in May").wait_for()

        # Export downloads the conversation as Markdown.
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Export").click()
        download = await download_info.value
        target = tmp_path / download.suggested_filename
        await download.save_as(target)
        markdown = target.read_text(encoding="utf-8")
        assert markdown.startswith("# Lisbon in May\n")
        assert "## You\n\n# Plan a **trip** to Lisbon" in markdown
        assert "## Assistant" in markdown

        # Delete asks first: dismissed, nothing happens; accepted, the conversation leaves both tabs.
        page.once("dialog", lambda dialog: dialog.dismiss())
        await page.get_by_role("button", name="Delete", exact=True).click()
        await page.wait_for_timeout(500)
        assert await page.locator("#conversations button.conversation").count() == 1
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Delete", exact=True).click()
        await page.wait_for_function("document.querySelectorAll('#conversations button.conversation').length === 0")
        await other.wait_for_function("document.querySelectorAll('#conversations button.conversation').length === 0")
        assert await page.locator("#messages li").count() == 0

        # Delete all my conversations, behind a confirmation.
        await _ask(page, "first of two")
        await page.get_by_role("button", name="New conversation").click()
        await _ask(page, "second of two")
        await page.wait_for_function("document.querySelectorAll('#conversations button.conversation').length === 2")
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Delete all my conversations").click()
        await page.wait_for_function("document.querySelectorAll('#conversations button.conversation').length === 0")
        await other.wait_for_function("document.querySelectorAll('#conversations button.conversation').length === 0")
