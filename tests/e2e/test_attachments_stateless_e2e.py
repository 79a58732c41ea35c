"""Attachments with a stateless Responses server (the offline model's ``stateless`` profile, provider
``openai-compatible``): files go inline as data URLs in the request, the server decodes them like a real one, and
the earlier turn's file is sent again with the next message (the conversation is ours)."""

from __future__ import annotations

import pytest

from scripts.local_stack.stack import LocalStack
from tests.attachment_files import image_bytes
from tests.e2e.conftest import new_user, open_socket, stack_info
from tests.e2e.test_attachments_e2e import TIMES, _send_and_wait, _upload

pytestmark = pytest.mark.e2e


def _image_parts(body: dict[str, object]) -> list[dict[str, object]]:
    items = body.get("input")
    assert isinstance(items, list)
    return [
        part
        for item in items
        if isinstance(item, dict) and isinstance(item.get("content"), list)
        for part in item["content"]
        if isinstance(part, dict) and part.get("type") == "input_image"
    ]


async def test_a_stateless_server_gets_the_file_inline_and_again_with_the_next_message(
    stateless_stack: LocalStack,
) -> None:
    info = stack_info(stateless_stack)
    user = new_user(stateless_stack, "stateless")
    async with open_socket(info, user.token) as ws:
        upload_id = await _upload(ws, "tall.gif", "image/gif", image_bytes(2, 7, "GIF"))
        text, conversation_id = await _send_and_wait(ws, "what is this", [upload_id])
        assert f"2{TIMES}7 pixels (GIF)" in text
        await _send_and_wait(ws, "thanks", [], conversationId=conversation_id)
    assert stateless_stack.offline_model is not None
    posted = [
        r.body
        for r in stateless_stack.offline_model.state.requests
        if r.method == "POST" and r.path.startswith("/v1/responses") and r.body
    ]
    first, second = posted[-2:]
    for body in (first, second):
        (image,) = _image_parts(body)
        assert str(image["image_url"]).startswith("data:image/gif;base64,")
        assert "previous_response_id" not in body
