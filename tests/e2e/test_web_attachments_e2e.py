"""Attachments on the page, in headless Chromium against the local stack: an image pasted into the message box is
uploaded straight to S3 (moto, its POST policy enforced) with a progress bar and a thumbnail, the offline model
answers its pixel size, the message keeps its thumbnail, and after a reload the history shows it again (its link from
getAttachment). A file of another type is refused on the page with a message, and a disguised one by the server."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from scripts.local_stack.stack import LocalStack
from tests.attachment_files import image_bytes, pdf_bytes
from tests.browser import needs_chromium, open_page
from tests.e2e.conftest import stack_info

pytestmark = [pytest.mark.e2e, pytest.mark.browser, needs_chromium]

REPLY = "#messages li.message.assistant"
#: The offline model writes an image's size with U+00D7.
TIMES = "\u00d7"

#: Pastes a file into the message box as a browser does for a screenshot (a ClipboardEvent carrying files).
#: Drops a file on the composer as a file manager's drag-and-drop does.
DROP = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const composer = document.getElementById("composer");
  composer.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  composer.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""
PASTE = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const box = document.getElementById("message");
  box.focus();
  box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
}"""


async def _paste(page: Any, name: str, content_type: str, data: bytes) -> None:
    await page.evaluate(PASTE, [name, content_type, base64.b64encode(data).decode()])


async def test_paste_an_image_see_its_thumbnail_get_the_answer_and_find_it_in_history(web_stack: LocalStack) -> None:
    info = stack_info(web_stack)
    async with open_page(timeout_ms=20_000) as page:
        await page.goto(info.web_url)
        await page.get_by_role("button", name="Use the demo account").click()
        await page.wait_for_selector("#status[data-state='connected']")

        # A type that cannot be attached is refused on the page, with a message, and nothing is uploaded.
        await _paste(page, "notes.txt", "text/plain", b"just text")
        await page.wait_for_selector("#composer-note:has-text('Not attached: notes.txt')")
        assert await page.locator("#attachments-tray li").count() == 0

        # A pasted screenshot: its thumbnail in the composer, uploaded (the progress bar done), then sent.
        await _paste(page, "screenshot.png", "image/png", image_bytes(3, 2))
        await page.wait_for_selector("#attachments-tray li.attachment[data-state='ready'] img.thumbnail")
        await page.fill("#message", "What is in this picture?")
        await page.click("#send")
        await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")
        answer = await page.locator(REPLY).last.inner_text()
        assert f"3{TIMES}2" in answer
        assert await page.locator("#attachments-tray li").count() == 0  # the tray emptied into the message
        sent = page.locator("#messages li.message.user .message-attachments img.thumbnail")
        assert await sent.count() == 1

        # After a reload the history shows the message with its thumbnail, loaded through getAttachment's link.
        await page.reload()
        await page.wait_for_selector("#status[data-state='connected']")
        await page.wait_for_selector(f"{REPLY}[data-state='done']")
        thumbnail = page.locator("#messages li.message.user .message-attachments img.thumbnail").first
        await thumbnail.wait_for()
        await page.wait_for_function(
            "() => { const img = document.querySelector('#messages .message-attachments img');"
            " return img && img.complete && img.naturalWidth === 3; }"
        )
        assert await thumbnail.get_attribute("alt") == "screenshot.png"

        # A PDF dropped on the composer, sent without a word: the model counts its pages.
        await page.evaluate(DROP, ["report.pdf", "application/pdf", base64.b64encode(pdf_bytes(3)).decode()])
        await page.wait_for_selector("#attachments-tray li.attachment[data-state='ready'] .file-badge")
        await page.click("#send")
        await page.wait_for_function(
            "() => document.querySelectorAll('#messages li.message.assistant[data-state=\\'done\\']').length === 2"
        )
        assert "3 pages" in await page.locator(REPLY).last.inner_text()

        # A text file disguised as a PNG uploads, and the server refuses it by its content.
        await _paste(page, "cat.png", "image/png", b"<html>not an image</html>")
        await page.wait_for_selector("#attachments-tray li.attachment[data-state='ready']")
        await page.fill("#message", "and this?")
        await page.click("#send")
        await page.wait_for_selector(f"{REPLY}[data-state='failed']")
        refused = await page.locator(REPLY).last.inner_text()
        assert "cat.png is not the PNG image it was declared as" in refused
