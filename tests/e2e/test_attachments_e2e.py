"""Attachments through the local stack, as a client does it: requestUpload over a real WebSocket, a real presigned
POST to S3 (moto, with its POST policy enforced as S3 does), sendMessage with the upload, the offline model decoding
the file it was sent, history, getAttachment, and deletion. Hostile variants: a disguised file, an oversized one, a
type not allowed, another user's upload, an upload of another size than declared."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from websockets.asyncio.client import ClientConnection

from scripts.chat.client import ChatClient
from scripts.chat.terminal import TerminalChat
from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS
from scripts.local_stack.stack import LocalStack
from tests.attachment_files import image_bytes, pdf_bytes
from tests.e2e.conftest import (
    new_user,
    open_socket,
    receive_frame,
    receive_until,
    reply_text,
    request,
    send,
    send_message,
    stack_info,
)

pytestmark = pytest.mark.e2e

#: How the offline model writes an image's size (``3x2`` with U+00D7): the contract's multiplication sign, U+00D7.
TIMES = "\u00d7"


async def _upload(ws: ClientConnection, name: str, content_type: str, data: bytes, *, size: int | None = None) -> str:
    """requestUpload, then the POST as a browser sends it; the upload's id (asserts S3 took the file)."""
    frame = await request_upload(ws, name, content_type, size if size is not None else len(data))
    assert frame["type"] == "upload", frame
    status, _ = await post_form(frame, data, content_type)
    assert status == 204
    return str(frame["uploadId"])


async def request_upload(ws: ClientConnection, name: str, content_type: str, size: int) -> dict[str, Any]:
    """requestUpload's answer: ``upload`` or an ``error``."""
    await send(ws, {"action": "requestUpload", "fileName": name, "contentType": content_type, "size": size})
    return await _answer(ws)


async def _answer(ws: ClientConnection) -> dict[str, Any]:
    """The next route response (frames of replies still streaming to this socket are skipped)."""
    while True:
        frame = await receive_frame(ws, timeout=10)
        if frame["type"] in ("upload", "attachment", "accepted") or (
            frame["type"] == "error" and "messageId" not in frame
        ):
            return frame


async def post_form(frame: dict[str, Any], data: bytes, content_type: str) -> tuple[int, str]:
    form = aiohttp.FormData()
    for name, value in frame["fields"].items():
        form.add_field(name, value)
    form.add_field("file", data, filename="upload", content_type=content_type)
    async with aiohttp.ClientSession() as session, session.post(frame["url"], data=form) as answer:
        return answer.status, await answer.text()


def _s3(stack: LocalStack) -> Any:
    info = stack_info(stack)
    return boto3.client("s3", endpoint_url=info.cognito_endpoint, region_name=info.region, **FAKE_CREDENTIALS)


def _keys(stack: LocalStack, prefix: str) -> list[str]:
    assert stack.resources is not None
    listed = _s3(stack).list_objects_v2(Bucket=stack.resources.upload_bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


async def _send_and_wait(ws: ClientConnection, text: str, attachments: list[str], **fields: Any) -> tuple[str, str]:
    accepted = await send_message(ws, text, attachments=attachments, **fields)
    frames = await receive_until(ws, "done", message_id=accepted["messageId"], timeout=30)
    return reply_text(frames, accepted["messageId"]), accepted["conversationId"]


async def _input_tokens(ws: ClientConnection, conversation_id: str) -> int:
    """The input tokens of the conversation's newest reply, as history shows them."""
    answer = await request(ws, {"action": "getHistory", "conversationId": conversation_id}, "history")
    return int(answer["messages"][-1]["usage"]["inputTokens"])


async def test_an_image_and_a_pdf_reach_the_model_history_and_the_owner_and_go_with_their_conversation(
    local_stack: LocalStack,
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "attach")
    png = image_bytes(3, 2)
    pdf = pdf_bytes(2)
    async with open_socket(info, user.token) as ws:
        upload = await request_upload(ws, "dot.png", "image/png", len(png))
        assert upload["uploadId"].startswith("u_")
        assert upload["expiresAt"].endswith("Z")
        assert {"key", "policy", "x-amz-signature", "Content-Type"} <= set(upload["fields"])
        assert await post_form(upload, png, "image/png") == (204, "")
        image_id = upload["uploadId"]

        text, conversation_id = await _send_and_wait(ws, "What is in this picture?", [image_id])
        assert f"3{TIMES}2" in text, text
        # The image counts as input, as the server counts it (85 + 170 per 512-px tile: one tile here): the same
        # question without it, in a conversation of its own, costs that much less.
        with_image = await _input_tokens(ws, conversation_id)
        other = await request(ws, {"action": "newConversation"}, "conversation")
        await _send_and_wait(ws, "What is in this picture?", [], conversationId=other["conversationId"])
        without = await _input_tokens(ws, other["conversationId"])
        assert with_image - without == 85 + 170

        pdf_id = await _upload(ws, "report.pdf", "application/pdf", pdf)
        text, _ = await _send_and_wait(ws, "", [pdf_id], conversationId=conversation_id)
        assert "2 pages" in text, text

        # A message after them: the earlier files go to the model again with their turns (the model answers the
        # newest message, which has none).
        await _send_and_wait(ws, "thanks", [], conversationId=conversation_id)

        answer = await request(ws, {"action": "getHistory", "conversationId": conversation_id}, "history")
        users = [m for m in answer["messages"] if m["role"] == "user"]
        assert users[0]["attachments"] == [
            {"uploadId": image_id, "fileName": "dot.png", "contentType": "image/png", "size": len(png)}
        ]
        assert users[1]["attachments"][0]["fileName"] == "report.pdf"
        assert "attachments" not in users[2]
        assert f"3{TIMES}2" in answer["messages"][1]["text"]

        link = await request(ws, {"action": "getAttachment", "uploadId": image_id}, "attachment")
        assert link["uploadId"] == image_id
        async with aiohttp.ClientSession() as session, session.get(link["url"]) as got:
            assert got.status == 200
            assert await got.read() == png

        # Moved out of uploads/ (which expire) into files/.
        assert _keys(local_stack, f"uploads/{user.user_id}/") == []
        assert sorted(_keys(local_stack, f"files/{user.user_id}/")) == sorted(
            [f"files/{user.user_id}/{image_id}", f"files/{user.user_id}/{pdf_id}"]
        )

        await request(ws, {"action": "deleteConversation", "conversationId": conversation_id}, "conversationDeleted")
        for _ in range(100):
            if not _keys(local_stack, f"files/{user.user_id}/"):
                break
            await asyncio.sleep(0.1)
        assert _keys(local_stack, f"files/{user.user_id}/") == []
        gone = await request(ws, {"action": "getAttachment", "uploadId": image_id}, "error")
        assert gone["code"] == "not_found"


async def test_refused_uploads_and_attachments(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "refuse")
    other = new_user(local_stack, "other")
    png = image_bytes(4, 4)
    async with open_socket(info, user.token) as ws, open_socket(info, other.token) as other_ws:
        # A type that is not allowed.
        refused = await request_upload(ws, "page.html", "text/html", 100)
        assert (refused["type"], refused["code"]) == ("error", "unsupported_attachment"), refused
        # Over the image limit (10 MB by default).
        refused = await request_upload(ws, "huge.png", "image/png", 10 * 1024 * 1024 + 1)
        assert (refused["type"], refused["code"]) == ("error", "too_large"), refused

        # S3 itself refuses a file of another size than declared, or another type than signed.
        upload = await request_upload(ws, "dot.png", "image/png", len(png))
        status, body = await post_form(upload, png + b"more", "image/png")
        assert (status, "EntityTooLarge" in body) == (400, True), body
        tampered = {**upload, "fields": {**upload["fields"], "Content-Type": "text/html"}}
        status, body = await post_form(tampered, png, "text/html")
        assert (status, "Policy Condition failed" in body) == (403, True), body
        # Not uploaded at all: not_found.
        await send(ws, {"action": "sendMessage", "message": "look", "attachments": [upload["uploadId"]]})
        answer = await _answer(ws)
        assert (answer["type"], answer["code"]) == ("error", "not_found"), answer

        # A disguised file: declared PNG, its bytes are HTML.
        disguised = b"<html><script>alert(1)</script></html>"
        fake_id = await _upload(ws, "cat.png", "image/png", disguised)
        await send(ws, {"action": "sendMessage", "message": "look", "attachments": [fake_id]})
        answer = await _answer(ws)
        assert (answer["type"], answer["code"]) == ("error", "unsupported_attachment"), answer
        # A real GIF declared as PNG is refused too.
        gif_id = await _upload(ws, "anim.png", "image/png", image_bytes(2, 2, "GIF"))
        await send(ws, {"action": "sendMessage", "message": "look", "attachments": [gif_id]})
        answer = await _answer(ws)
        assert answer["code"] == "unsupported_attachment", answer

        # Another user's upload: not found, to them, for sending and for reading.
        own_id = await _upload(ws, "dot.png", "image/png", png)
        await send(other_ws, {"action": "sendMessage", "message": "mine now", "attachments": [own_id]})
        answer = await _answer(other_ws)
        assert (answer["type"], answer["code"]) == ("error", "not_found"), answer
        await send(other_ws, {"action": "getAttachment", "uploadId": own_id})
        answer = await _answer(other_ws)
        assert (answer["type"], answer["code"]) == ("error", "not_found"), answer

        # The owner's own upload still works.
        text, _ = await _send_and_wait(ws, "and this?", [own_id])
        assert f"4{TIMES}4" in text


class _FixedToken:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def invalidate(self) -> None:
        """A test token is not renewed."""


async def test_the_terminal_client_attaches_a_file_with_slash_attach(local_stack: LocalStack, tmp_path: Path) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "terminal")
    picture = tmp_path / "wide.png"
    picture.write_bytes(image_bytes(5, 3))
    disguised = tmp_path / "notes.png"
    disguised.write_text("just text")
    out = io.StringIO()
    async with ChatClient(info.websocket_url, _FixedToken(user.token)) as client:
        await client.wait_connected(timeout=10)
        chat = TerminalChat(client, out=out, username=user.username, width=100)
        printer = asyncio.create_task(chat._print_events())
        try:
            await chat._handle_line(f"/attach {disguised}")
            await chat._handle_line(f"/attach {picture}")
            await chat._handle_line("what is it?")
            await chat._handle_line("/history")
        finally:
            printer.cancel()
    shown = out.getvalue()
    assert "notes.png is not a PNG, JPEG, WebP or GIF image or a PDF" in shown
    assert "Attached wide.png" in shown
    assert f"5{TIMES}3 pixels" in shown
    assert "[attached: wide.png]" in shown
