"""The web chat page, driven in headless Chromium against a fake backend on 127.0.0.1.

The fake backend is one aiohttp app: it serves ``web/`` and ``config.json``, plays Cognito's InitiateAuth, and plays
the WebSocket protocol (refusing a connection whose ``?Auth=`` is not the token it issued). Replies are held at a
gate the test opens, so the test sees the page mid-stream rather than racing it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from tests.browser import ARTIFACTS, needs_chromium, open_page

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
USERNAME = "demo"
PASSWORD = "Demo-password-1"
CLIENT_ID = "web-client-id"
XSS = '<img src=x onerror="window.__xss=1">'


@dataclass
class FakeBackend:
    """Cognito + WebSocket gateway + assistant, scripted."""

    token_number: int = 0
    tokens: set[str] = field(default_factory=set)
    auth_calls: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connects: int = 0
    refused: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    conversations: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"conversationId": "c_old", "title": "Trip to Kyoto", "updatedAt": "2026-05-01T10:00:00Z"},
        ]
    )
    port: int = 0

    def config(self) -> dict[str, str]:
        return {
            "websocketUrl": f"ws://127.0.0.1:{self.port}/ws",
            "region": "us-east-1",
            "cognitoEndpoint": f"http://127.0.0.1:{self.port}/cognito/",
            "userPoolId": "us-east-1_test",
            "userPoolClientId": CLIENT_ID,
            "demoUsername": USERNAME,
        }

    async def cognito(self, request: web.Request) -> web.Response:
        assert request.headers["X-Amz-Target"] == "AWSCognitoIdentityProviderService.InitiateAuth"
        assert request.headers["Content-Type"].startswith("application/x-amz-json-1.1")
        body = json.loads(await request.text())
        self.auth_calls.append(body)
        params = body.get("AuthParameters", {})
        ok = body.get("ClientId") == CLIENT_ID and (
            (body["AuthFlow"] == "USER_PASSWORD_AUTH" and params == {"USERNAME": USERNAME, "PASSWORD": PASSWORD})
            or (body["AuthFlow"] == "REFRESH_TOKEN_AUTH" and params.get("REFRESH_TOKEN") == "refresh-1")
        )
        if not ok:
            error = {"__type": "NotAuthorizedException", "message": "Incorrect username or password."}
            return web.json_response(error, status=400, content_type="application/x-amz-json-1.1")
        self.token_number += 1
        token = f"access-token-{self.token_number}"
        self.tokens.add(token)
        result = {"AccessToken": token, "ExpiresIn": 3600, "TokenType": "Bearer", "IdToken": "id"}
        if body["AuthFlow"] == "USER_PASSWORD_AUTH":
            result["RefreshToken"] = "refresh-1"
        return web.json_response({"AuthenticationResult": result}, content_type="application/x-amz-json-1.1")

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("Auth") not in self.tokens:
            self.refused += 1
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connects += 1
        self.sockets.append(ws)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                self.received.append(frame)
                await self.on_frame(ws, frame)
        finally:
            self.sockets.remove(ws)
        return ws

    async def broadcast(self, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_json(frame)

    async def on_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        action = frame["action"]
        if action == "listConversations":
            await ws.send_json({"type": "conversations", "items": self.conversations})
        elif action == "getHistory":
            messages = [
                {"role": "user", "text": "Plan a day in Kyoto"},
                {"role": "assistant", "text": "Start at Fushimi Inari at dawn.", "messageId": "m_old"},
            ]
            await ws.send_json({"type": "history", "conversationId": frame["conversationId"], "messages": messages})
        elif action == "newConversation":
            await ws.send_json({"type": "conversation", "conversationId": "c_fresh"})
        elif action == "cancel":
            await self.broadcast({"type": "cancelled", "messageId": frame["messageId"]})
        elif action == "sendMessage":
            asyncio.get_running_loop().create_task(self.reply(ws, frame))

    async def reply(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        mid, text = frame["messageId"], frame["message"]
        if text == "use up my quota":
            await ws.send_json({"type": "error", "messageId": mid, "code": "quota_exceeded", "message": "Daily limit."})
            return
        await ws.send_json({"type": "accepted", "messageId": mid, "conversationId": "c_new"})
        if text == "tell me a long story":
            await self.broadcast({"type": "delta", "messageId": mid, "seq": 0, "text": "Once upon a time"})
            return  # streams until cancelled
        await self.broadcast({"type": "delta", "messageId": mid, "seq": 0, "text": "Hello"})
        await self.broadcast({"type": "tool", "messageId": mid, "name": "current_time", "status": "started"})
        await self.broadcast({"type": "delta", "messageId": mid, "seq": 1, "text": f", {XSS}"})
        await self.broadcast({"type": "delta", "messageId": mid, "seq": 1, "text": f", {XSS}"})  # a re-sent frame
        await self.gate.wait()
        await self.broadcast({"type": "tool", "messageId": mid, "name": "current_time", "status": "done"})
        await self.broadcast({"type": "delta", "messageId": mid, "seq": 2, "text": " it is noon."})
        usage = {"inputTokens": 12, "outputTokens": 7}
        await self.broadcast({"type": "done", "messageId": mid, "conversationId": "c_new", "usage": usage})
        self.conversations.insert(0, {"conversationId": "c_new", "title": "Hello", "updatedAt": "2026-05-02T09:00:00Z"})

    async def drop_connections(self) -> None:
        for ws in list(self.sockets):
            await ws.close(code=1011, message=b"gateway restarted")


@pytest.fixture
async def backend() -> AsyncIterator[tuple[FakeBackend, str]]:
    fake = FakeBackend()

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / "index.html")

    async def config(_: web.Request) -> web.Response:
        return web.json_response(fake.config())

    app = web.Application()
    app.router.add_post("/cognito/", fake.cognito)
    app.router.add_get("/ws", fake.websocket)
    app.router.add_get("/config.json", config)
    app.router.add_get("/", index)
    app.router.add_static("/", WEB)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = int(runner.addresses[0][1])
    try:
        yield fake, f"http://127.0.0.1:{fake.port}/"
    finally:
        fake.gate.set()
        await runner.cleanup()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with open_page(timeout_ms=10_000) as browser_page:
        yield browser_page


async def sign_in(page: Any, url: str, password: str = PASSWORD) -> None:
    await page.goto(url)
    await page.wait_for_function("!document.querySelector('#sign-in').disabled")
    assert await page.input_value("#username") == USERNAME  # prefilled from config.json's demoUsername
    await page.fill("#password", password)
    await page.click("#sign-in")


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


REPLY = "#messages li.message.assistant"


async def test_sign_in_stream_a_reply_and_stop_another(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    # A wrong password is refused and said so.
    await sign_in(page, url, password="wrong")
    await page.wait_for_selector("#sign-in-error:has-text('Incorrect username or password.')")
    assert fake.connects == 0

    await page.fill("#password", PASSWORD)
    await page.click("#sign-in")
    await page.wait_for_selector("#status[data-state='connected']")
    assert fake.auth_calls[-1]["AuthFlow"] == "USER_PASSWORD_AUTH"
    assert await page.locator("#sign-in-view").is_hidden()
    assert await page.locator("#chat-view").is_visible()
    assert await page.input_value("#password") == ""  # not left lying in the DOM
    # The conversation list arrives on connect.
    await page.wait_for_selector("#conversations button:has-text('Trip to Kyoto')")

    await page.fill("#message", "What time is it?")
    await page.click("#send")
    # Mid-stream: the first frames are on the page, the re-sent frame is not doubled, the reply is not done.
    reply = page.locator(REPLY).last
    partial = f"Hello, {XSS}"
    await page.wait_for_function(
        "t => document.querySelector('#messages li.message.assistant:last-child .text')?.textContent === t", arg=partial
    )
    assert await reply.get_attribute("data-state") == "streaming"
    assert await page.locator("#stop").is_enabled()
    assert await page.locator("#send").is_disabled()
    assert "current_time: running" in await reply.locator(".tools").inner_text()
    # Model text is text: the markup is shown, never parsed.
    assert await page.locator("#messages img").count() == 0
    assert await page.evaluate("window.__xss") is None
    sent = next(f for f in fake.received if f["action"] == "sendMessage")
    assert sent["message"] == "What time is it?"

    fake.gate.set()
    await page.wait_for_selector(f"{REPLY}[data-state='done']")
    assert await reply.locator(".text").text_content() == f"Hello, {XSS} it is noon."
    assert "current_time: done" in await reply.locator(".tools").inner_text()
    assert "12 in / 7 out tokens" in await reply.locator(".meta").inner_text()
    # The list is refreshed after the reply, and the new conversation is the current one.
    await page.wait_for_selector("#conversations button[data-conversation-id='c_new'][aria-current='true']")

    # The next message continues the conversation; Stop cancels it mid-reply.
    await page.fill("#message", "tell me a long story")
    await page.press("#message", "Enter")
    await page.wait_for_selector(f"{REPLY}:last-child .text:has-text('Once upon a time')")
    await page.click("#stop")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='cancelled']")
    story = next(f for f in fake.received if f.get("message") == "tell me a long story")
    assert story["conversationId"] == "c_new"
    assert {"action": "cancel", "messageId": story["messageId"]} in fake.received
    assert await page.locator("#send").is_enabled()
    assert await page.locator("#stop").is_disabled()

    # The access token lives in memory only.
    stored = await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
    assert "access-token" not in stored
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "web-chat.png"), full_page=True)


async def test_conversations_history_errors_and_another_tabs_reply(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    await sign_in(page, url)
    await page.click("#conversations button:has-text('Trip to Kyoto')")
    await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")
    assert await page.locator(f"{REPLY} .text").all_text_contents() == ["Start at Fushimi Inari at dawn."]
    assert {"action": "getHistory", "conversationId": "c_old"} in fake.received
    assert await page.get_attribute("#conversations button[data-conversation-id='c_old']", "aria-current") == "true"

    # An error frame is shown, and the composer is usable again.
    await page.fill("#message", "use up my quota")
    await page.click("#send")
    await page.wait_for_selector("#messages li.error[data-code='quota_exceeded']:has-text('Daily limit.')")
    sent = [f for f in fake.received if f["action"] == "sendMessage"][-1]
    assert sent["conversationId"] == "c_old"
    await page.wait_for_selector(f"{REPLY}[data-message-id='{sent['messageId']}'][data-state='failed']")
    assert await page.locator("#send").is_enabled()

    # A reply another tab of the same user asked for is shown as it streams.
    await fake.broadcast({"type": "accepted", "messageId": "m_other", "conversationId": "c_old"})
    await fake.broadcast({"type": "delta", "messageId": "m_other", "seq": 1, "text": " world"})
    await fake.broadcast({"type": "delta", "messageId": "m_other", "seq": 0, "text": "hello"})
    await fake.broadcast({"type": "done", "messageId": "m_other", "conversationId": "c_old", "usage": {}})
    other = page.locator("#messages li[data-message-id='m_other']")
    await page.wait_for_selector("#messages li[data-message-id='m_other'][data-state='done']")
    assert await other.locator(".text").text_content() == "hello world"
    assert "another tab" in await other.locator(".role").inner_text()

    # New conversation: a fresh, empty page.
    await page.click("#new-conversation")
    await page.wait_for_function("document.querySelectorAll('#messages li').length === 0")
    assert {"action": "newConversation"} in fake.received
    await page.fill("#message", "hi")
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child .text:has-text('Hello')")
    assert [f for f in fake.received if f["action"] == "sendMessage"][-1]["conversationId"] == "c_fresh"


async def test_reconnects_with_backoff_after_the_connection_drops(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    await sign_in(page, url)
    await page.wait_for_selector("#status[data-state='connected']")
    await wait_until(lambda: fake.connects == 1)

    await fake.drop_connections()
    await page.wait_for_selector("#status[data-state='reconnecting']")
    assert "reconnecting" in (await page.inner_text("#status")).lower()
    await page.wait_for_selector("#status[data-state='connected']")
    await wait_until(lambda: fake.connects == 2)
    assert fake.refused == 0
    # The new connection works: it asked for the list again and can chat.
    assert [f["action"] for f in fake.received].count("listConversations") == 2
    fake.gate.set()
    await page.fill("#message", "still there?")
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")
