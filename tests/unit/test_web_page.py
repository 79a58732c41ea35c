"""The web chat page, driven in headless Chromium against a fake backend on 127.0.0.1.

The fake backend is one aiohttp app: it serves ``web/`` and ``config.json``, plays Cognito (SRP sign-in with the
server side the local stack's moto uses, checked here against AWS's own browser library; refresh; revoke), and plays
the WebSocket protocol (refusing a connection whose ``?Auth=`` is not the token it issued). Replies are held at a
gate the test opens, so the test sees the page mid-stream rather than racing it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from scripts.local_stack.aws.moto_patches import SrpChallenge
from tests.browser import ARTIFACTS, needs_chromium, open_page
from tests.protocol import client_frame_errors

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
USERNAME = "demo"
PASSWORD = "Demo-password-1"
CLIENT_ID = "web-client-id"
USER_POOL_ID = "us-east-1_test"
XSS = '<img src=x onerror="window.__xss=1">'
MARKDOWN = """Here is **bold** text and `inline code`.

- first item
- second item

```python
print("hello")
```

| planet | moons |
|---|---|
| Earth | 1 |
| Mars | 2 |
"""
HOSTILE = """Hostile text follows.

<img src=x onerror="window.__xss=1">
<script>window.__xss=2</script>
<iframe src="javascript:window.__xss=3"></iframe>
<svg onload="window.__xss=4"></svg>
<a href="javascript:window.__xss=5">raw html link</a>

[markdown link](javascript:window.__xss=6) and [entity link](jav&#x61;script:window.__xss=7)
![image](javascript:window.__xss=8) <details open ontoggle="window.__xss=9">x</details>

[a real link](https://example.com/docs)
"""
CANNED = {"show me markdown": MARKDOWN, "be hostile": HOSTILE}


def access_token(number: int, expires_in: int) -> str:
    """A JWT-shaped access token (unsigned: only this fake checks it) with ``iat``/``exp``, as Cognito's: the SRP
    library reads a token's lifetime from its claims, not from ``ExpiresIn``."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"sub": f"user-{number}", "token_use": "access", "iat": now, "exp": now + expires_in, "n": number}
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def cognito_error(code: str, message: str) -> web.Response:
    """An error as Cognito answers it (``__type`` and ``message``, HTTP 400)."""
    error = {"__type": code, "message": message}
    return web.json_response(error, status=400, content_type="application/x-amz-json-1.1")


@dataclass
class FakeBackend:
    """Cognito + WebSocket gateway + assistant, scripted."""

    token_number: int = 0
    tokens: set[str] = field(default_factory=set)
    auth_calls: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    #: Frames the page sent that the protocol's schema refuses (checked when each test's backend stops).
    invalid: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
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
    #: The next frame any connection sends is answered ``token_expired`` and the connection closed (as the server
    #: does once the access token's ``exp`` has passed).
    expire_next: bool = False
    #: The next frame any connection sends is answered ``token_revoked`` and the connection closed (as the server
    #: does once Cognito refuses the token: signed out everywhere, disabled, deleted).
    revoke_next: bool = False
    #: RevokeToken requests the page sent (its Sign out).
    revoked: list[dict[str, Any]] = field(default_factory=list)
    #: SRP challenges issued and not yet answered, by SECRET_BLOCK; and the PASSWORD_VERIFIER answers received.
    srp_challenges: dict[str, SrpChallenge] = field(default_factory=dict)
    srp_answers: list[dict[str, Any]] = field(default_factory=list)
    usage_messages: int = 10
    #: How long the answer to ``newConversation`` takes (the server's round trip, when a message is typed at once).
    new_conversation_delay: float = 0.0
    new_conversations: int = 0
    #: The access tokens' lifetime (Cognito's is an hour).
    expires_in: int = 3600
    model: str | None = None
    #: The one-click demo account's name (the local stack's is an e-mail address).
    demo_username: str = USERNAME
    #: Turns another tab of the user added to ``c_old`` (history messages), and how many ``getHistory`` answers
    #: still leave them out (the server sends ``done`` just before it commits the turn).
    other_tab_turns: list[dict[str, Any]] = field(default_factory=list)
    other_tab_turns_missing: int = 0
    #: The app client Cognito knows (a restarted local stack has a new one).
    client_id: str = CLIENT_ID
    #: Where config.json says Cognito is, when not this server (the local stack's moto has a port of its own).
    cognito_url: str | None = None

    def config(self) -> dict[str, str]:
        return {
            "websocketUrl": f"ws://127.0.0.1:{self.port}/ws",
            "region": "us-east-1",
            "cognitoEndpoint": self.cognito_url or f"http://127.0.0.1:{self.port}/cognito/",
            "userPoolId": USER_POOL_ID,
            "userPoolClientId": self.client_id,
            "demoUsername": self.demo_username,
            "demoSignIn": "demo-sign-in",
        }

    async def demo_sign_in(self, request: web.Request) -> web.Response:
        """The local gateway's one-click sign-in: Cognito's answer for the demo user, no password involved."""
        self.auth_calls.append({"AuthFlow": "DEMO"})
        self.token_number += 1
        token = f"access-token-{self.token_number}"
        self.tokens.add(token)
        result = {"AccessToken": token, "ExpiresIn": 3600, "RefreshToken": "refresh-1", "IdToken": "id"}
        return web.json_response({"AuthenticationResult": result})

    async def cognito(self, request: web.Request) -> web.Response:
        assert request.headers["Content-Type"].startswith("application/x-amz-json-1.1")
        body = json.loads(await request.text())
        if request.headers["X-Amz-Target"] == "AWSCognitoIdentityProviderService.RevokeToken":
            self.revoked.append(body)
            self.tokens.clear()  # the access tokens it issued stop working too
            return web.json_response({}, content_type="application/x-amz-json-1.1")
        if request.headers["X-Amz-Target"] == "AWSCognitoIdentityProviderService.InitiateAuth":
            self.auth_calls.append(body)
        if body.get("ClientId") != self.client_id:
            # As Cognito (and moto) answer for an app client they do not know.
            return cognito_error("ResourceNotFoundException", f"{body.get('ClientId')} not found")
        if request.headers["X-Amz-Target"] == "AWSCognitoIdentityProviderService.RespondToAuthChallenge":
            self.srp_answers.append(body)
            answer = body.get("ChallengeResponses", {})
            challenge = self.srp_challenges.pop(answer.get("PASSWORD_CLAIM_SECRET_BLOCK", ""), None)
            proved = (
                body.get("ChallengeName") == "PASSWORD_VERIFIER"
                and challenge is not None
                and answer.get("USERNAME") == USERNAME
                and challenge.verify(
                    timestamp=answer.get("TIMESTAMP", ""), signature=answer.get("PASSWORD_CLAIM_SIGNATURE", "")
                )
            )
            if not proved:
                return cognito_error("NotAuthorizedException", "Incorrect username or password.")
            return self.tokens_answer(refresh_token="refresh-1")
        assert request.headers["X-Amz-Target"] == "AWSCognitoIdentityProviderService.InitiateAuth"
        params = body.get("AuthParameters", {})
        if body["AuthFlow"] == "USER_SRP_AUTH":
            if params.get("USERNAME") != USERNAME:
                return cognito_error("NotAuthorizedException", "Incorrect username or password.")
            challenge = SrpChallenge(
                user_pool_id=USER_POOL_ID, user_id=USERNAME, password=PASSWORD, srp_a_hex=params["SRP_A"]
            )
            self.srp_challenges[challenge.secret_block] = challenge
            parameters = {**challenge.parameters(), "USERNAME": USERNAME}
            return web.json_response(
                {"ChallengeName": "PASSWORD_VERIFIER", "ChallengeParameters": parameters},
                content_type="application/x-amz-json-1.1",
            )
        if body["AuthFlow"] != "REFRESH_TOKEN_AUTH":
            # The deployed app client allows SRP and refresh only.
            return cognito_error("InvalidParameterException", f"{body['AuthFlow']} flow not enabled for this client")
        if params.get("REFRESH_TOKEN") != "refresh-1":
            return cognito_error("NotAuthorizedException", "Invalid Refresh Token")
        return self.tokens_answer()

    def tokens_answer(self, refresh_token: str | None = None) -> web.Response:
        self.token_number += 1
        token = access_token(self.token_number, self.expires_in)
        self.tokens.add(token)
        result = {"AccessToken": token, "ExpiresIn": self.expires_in, "TokenType": "Bearer", "IdToken": "id"}
        if refresh_token is not None:
            result["RefreshToken"] = refresh_token
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
                errors = client_frame_errors(frame)
                if errors:
                    self.invalid.append((frame, errors))
                await self.on_frame(ws, frame)
        finally:
            self.sockets.remove(ws)
        return ws

    async def broadcast(self, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_json(frame)

    def usage(self) -> dict[str, Any]:
        return {
            "type": "usage",
            "day": "2026-05-02",
            "messages": self.usage_messages,
            "messageQuota": 200,
            "inputTokens": 1500,
            "inputTokenQuota": 2_000_000,
            "outputTokens": 500,
            "outputTokenQuota": 200_000,
            "resetsAt": "2026-05-03T00:00:00.000Z",
        }

    async def on_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        action = frame["action"]
        if self.revoke_next:
            self.revoke_next = False
            await ws.send_json({"type": "error", "code": "token_revoked", "message": "You were signed out."})
            await ws.close(code=1008, message=b"token revoked")
            return
        if self.expire_next:
            self.expire_next = False
            await ws.send_json({"type": "error", "code": "token_expired", "message": "Your session expired."})
            await ws.close(code=1008, message=b"token expired")
            return
        if action == "getUsage":
            await ws.send_json(self.usage())
        elif action == "listConversations":
            await ws.send_json({"type": "conversations", "items": self.conversations})
        elif action == "getHistory":
            messages = [
                {"role": "user", "text": "Plan a day in Kyoto"},
                {
                    "role": "assistant",
                    "text": "Start at Fushimi Inari at dawn.",
                    "messageId": "m_old",
                    # What a history frame may carry about a reply: shown like a live reply's.
                    "model": "gpt-5-mini",
                    "usage": {"inputTokens": 40, "outputTokens": 9},
                    "tools": [{"name": "current_time", "status": "done"}],
                },
            ]
            if self.other_tab_turns_missing:
                self.other_tab_turns_missing -= 1
            elif frame["conversationId"] == "c_old":
                messages += self.other_tab_turns
            await ws.send_json({"type": "history", "conversationId": frame["conversationId"], "messages": messages})
        elif action == "newConversation":
            self.new_conversations += 1
            fresh = "c_fresh" if self.new_conversations == 1 else f"c_fresh{self.new_conversations}"
            if self.new_conversation_delay:
                await asyncio.sleep(self.new_conversation_delay)
            await ws.send_json({"type": "conversation", "conversationId": fresh})
        elif action == "cancel":
            await self.broadcast({"type": "cancelled", "messageId": frame["messageId"]})
        elif action == "sendMessage":
            asyncio.get_running_loop().create_task(self.reply(ws, frame))

    async def reply(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        mid, text = frame["messageId"], frame["message"]
        if text == "use up my quota":
            await ws.send_json({"type": "error", "messageId": mid, "code": "quota_exceeded", "message": "Daily limit."})
            return
        if text.startswith("too big for the server"):
            # As API Gateway does with a frame over 32 KB: the connection closes before any handler sees it.
            await ws.close(code=1009, message=b"Message too big")
            return
        if text == "too fast":
            message = "Too many sendMessage requests; try again in 1.5 s."
            await ws.send_json({"type": "error", "code": "rate_limited", "retryAfterMs": 1500, "message": message})
            return
        if text in CANNED:
            await ws.send_json({"type": "accepted", "messageId": mid, "conversationId": "c_new"})
            reply = CANNED[text]
            # In small pieces, as the server coalesces them: the page renders Markdown that is still incomplete.
            for seq, start in enumerate(range(0, len(reply), 40)):
                await self.broadcast({"type": "delta", "messageId": mid, "seq": seq, "text": reply[start : start + 40]})
            self.usage_messages += 1
            usage = {"inputTokens": 30, "outputTokens": 60}
            done = {"type": "done", "messageId": mid, "conversationId": "c_new", "usage": usage, "model": self.model}
            await self.broadcast(done)
            if not any(c["conversationId"] == "c_new" for c in self.conversations):
                self.conversations.insert(
                    0, {"conversationId": "c_new", "title": text, "updatedAt": "2026-05-02T09:00Z"}
                )
            return
        await ws.send_json({"type": "accepted", "messageId": mid, "conversationId": "c_new"})
        if text == "drop and retry":
            # The model's stream dropped on a stateless provider: the worker asks again and resets the text.
            for frame in (
                {"type": "delta", "messageId": mid, "seq": 0, "offset": 0, "text": "Storms at sea are"},
                {"type": "delta", "messageId": mid, "seq": 1, "offset": 17, "text": " wild and"},
                {"type": "reset", "messageId": mid, "offset": 0},
                {"type": "delta", "messageId": mid, "seq": 0, "offset": 0, "text": "Storms at sea"},
                {"type": "delta", "messageId": mid, "seq": 1, "offset": 13, "text": " are calm today."},
                {"type": "done", "messageId": mid, "conversationId": "c_new", "usage": {}},
            ):
                await self.broadcast(frame)
            return
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
    app.router.add_post("/demo-sign-in", fake.demo_sign_in)
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
    assert fake.invalid == [], "the page sent frames outside docs/protocol.schema.json"


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
    assert [call["AuthFlow"] for call in fake.auth_calls] == ["USER_SRP_AUTH", "USER_SRP_AUTH"]
    assert len(fake.srp_answers) == 2  # the password itself never left the page
    assert PASSWORD not in json.dumps(fake.auth_calls + fake.srp_answers)
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
    old = page.locator(f"{REPLY}[data-message-id='m_old']")
    assert await old.locator(".meta").inner_text() == "40 in / 9 out tokens · gpt-5-mini"
    assert await old.locator(".tools").inner_text() == "Tool current_time: done"
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
    other = page.locator(f"{REPLY}[data-message-id='m_other']")
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


async def test_a_reply_asked_for_in_another_tab_shows_with_its_question(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    await signed_in(page, url)
    await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")  # c_old, the latest
    fake.other_tab_turns = [
        {"role": "user", "text": "What time is it in Tokyo?", "messageId": "m_other"},
        {"role": "assistant", "text": "It is noon.", "messageId": "m_other", "status": "done", "model": "m"},
    ]
    fake.other_tab_turns_missing = 1  # the first read back comes before the turn is committed
    # What the server sends this tab when another tab asks (`accepted` goes to the sender only).
    await fake.broadcast({"type": "delta", "messageId": "m_other", "seq": 0, "offset": 0, "text": "It is"})
    await fake.broadcast({"type": "delta", "messageId": "m_other", "seq": 1, "offset": 5, "text": " noon."})
    await fake.broadcast({"type": "done", "messageId": "m_other", "conversationId": "c_old", "usage": {}, "model": "m"})
    question = page.locator("#messages li.message.user[data-message-id='m_other']")
    await page.wait_for_selector(
        "#messages li.message.user[data-message-id='m_other']:has-text('What time is it in Tokyo?')"
    )
    assert "another tab" in await question.locator(".role").inner_text()
    # In order: the question, then its reply, below what the pane showed; the pane was not replaced.
    texts = await page.locator("#messages li .text").all_text_contents()
    assert texts == [
        "Plan a day in Kyoto",
        "Start at Fushimi Inari at dawn.",
        "What time is it in Tokyo?",
        "It is noon.",
    ]
    reads = [f for f in fake.received if f["action"] == "getHistory"]
    assert len(reads) == 3, "the pane's history, then the turn read back twice (it was not committed at first)"
    assert all(f["conversationId"] == "c_old" for f in reads)

    # A reply in another conversation than the one shown does not land in this one.
    await fake.broadcast({"type": "delta", "messageId": "m_elsewhere", "seq": 0, "offset": 0, "text": "Elsewhere"})
    await fake.broadcast({"type": "done", "messageId": "m_elsewhere", "conversationId": "c_other", "usage": {}})
    await page.wait_for_function("!document.querySelector('#messages li[data-message-id=\"m_elsewhere\"]')")
    assert await page.locator("#messages li .text").all_text_contents() == texts

    # A reply of another tab that fails keeps its question too (failed turns are in the history).
    fake.other_tab_turns.append({"role": "user", "text": "Tell me about Mars", "messageId": "m_failed"})
    await fake.broadcast({"type": "delta", "messageId": "m_failed", "seq": 0, "offset": 0, "text": "Mars is"})
    failure = {"type": "error", "messageId": "m_failed", "code": "model_unavailable", "message": "The model failed."}
    await fake.broadcast(failure)
    await page.wait_for_selector("#messages li.message.user[data-message-id='m_failed']:has-text('Tell me about Mars')")
    assert await page.get_attribute(f"{REPLY}[data-message-id='m_failed']", "data-state") == "failed"


async def test_untitled_conversations_never_share_the_new_conversation_buttons_name(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.conversations += [
        # What a server may list: its default title (a first message with nothing left once Markdown is stripped,
        # or one listed by an older server before its first reply finished), and no title at all.
        {"conversationId": "c_default", "title": "New conversation", "updatedAt": "2026-05-01T09:00:00Z"},
        {"conversationId": "c_blank", "title": "", "updatedAt": "2026-05-01T08:00:00Z"},
    ]
    await signed_in(page, url)
    await page.wait_for_selector("#conversations button[data-conversation-id='c_blank']")
    # As a person (or a screen reader, or a test) finds it by name: exactly one button.
    assert await page.get_by_role("button", name="New conversation").count() == 1
    assert (
        await page.get_by_role("button", name="New conversation", exact=True).get_attribute("id") == "new-conversation"
    )
    for conversation_id in ("c_default", "c_blank"):
        entry = page.locator(f"#conversations button[data-conversation-id='{conversation_id}'] .title")
        assert await entry.inner_text() == "Untitled conversation"
    assert await page.locator("#conversations button:has-text('Trip to Kyoto')").count() == 1


async def test_a_message_sent_the_instant_after_new_conversation_shows_with_its_reply(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.gate.set()
    fake.new_conversation_delay = 0.3  # the message is sent long before the new conversation's id is known
    await signed_in(page, url)
    await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")
    for attempt in range(1, 4):
        # As a script (or an impatient person) does: New conversation, and the message, in the same instant.
        await page.evaluate(
            """text => {
                document.querySelector('#new-conversation').click();
                document.querySelector('#message').value = text;
                document.querySelector('#send').click();
            }""",
            f"question {attempt}",
        )
        await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")
        await asyncio.sleep(0.2)  # anything late (the conversation frame, the list) has arrived
        users = await page.locator("#messages li.message.user .text").all_text_contents()
        assert users == [f"question {attempt}"], f"attempt {attempt}: the pane shows {users}"
        replies = await page.locator(f"{REPLY} .text").all_text_contents()
        assert replies == [f"Hello, {XSS} it is noon."], f"attempt {attempt}: the pane shows {replies}"
        assert await page.input_value("#message") == ""
        sent = [f for f in fake.received if f["action"] == "sendMessage"][-1]
        assert sent["message"] == f"question {attempt}"
        fresh = "c_fresh" if attempt == 1 else f"c_fresh{attempt}"
        assert sent["conversationId"] == fresh, "the message went to the new conversation, not the old one"
    assert [f["action"] for f in fake.received].count("newConversation") == 3
    assert [f["action"] for f in fake.received].count("sendMessage") == 3


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


async def serve_cognito(fake: FakeBackend) -> web.AppRunner:
    """Cognito on a port of its own, as moto's server is in ``make dev`` (a restart gives it a new port), answering
    CORS as moto and Cognito do."""
    cors = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "content-type, x-amz-target, x-amz-user-agent, cache-control",
        "Access-Control-Allow-Methods": "POST",
    }

    async def preflight(_: web.Request) -> web.Response:
        return web.Response(headers=cors)

    async def cognito(request: web.Request) -> web.StreamResponse:
        response = await fake.cognito(request)
        response.headers.update(cors)
        return response

    app = web.Application()
    app.router.add_post("/", cognito)
    app.router.add_route("OPTIONS", "/", preflight)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.cognito_url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    return runner


async def test_a_tab_open_across_a_stack_restart_retries_when_back_online_then_asks_to_sign_in_again(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.gate.set()
    old_cognito = await serve_cognito(fake)
    await signed_in(page, url)
    # `make dev` stops: Cognito is unreachable, the gateway refuses the old tokens, the tab keeps trying.
    await old_cognito.cleanup()
    fake.tokens.clear()
    await fake.drop_connections()
    await page.wait_for_selector("#status[data-state='reconnecting']:has-text('Cannot reach the sign-in service')")
    # Its backoff has grown past several seconds (and never past 30 s)...
    status = page.locator("#status")
    await page.wait_for_function(
        "() => { const m = /in (\\d+) s/.exec(document.querySelector('#status').textContent); return m && +m[1] >= 8 }",
        timeout=20_000,
    )
    # ...when `make dev` is back: a new user pool, a new app client, Cognito on another port.
    fake.client_id = "restarted-client-id"
    new_cognito = await serve_cognito(fake)
    try:
        calls = len(fake.auth_calls)
        # The browser went offline and came back (Chromium's network emulation): the tab retries at once, finds
        # its session belongs to the stack that is gone, and says so on the sign-in screen instead of looping.
        await page.context.set_offline(True)
        await page.wait_for_selector("#status:has-text('when back online')")
        await page.context.set_offline(False)
        await page.wait_for_selector("#sign-in-view:not([hidden])", timeout=4_000)
        assert "restarted" in await page.inner_text("#sign-in-error")
        assert "sign in again" in await page.inner_text("#sign-in-error")
        assert len(fake.auth_calls) == calls  # the old refresh token was not offered to the new stack
        # Signing in again goes to the new stack.
        await page.fill("#password", PASSWORD)
        await page.click("#sign-in")
        await page.wait_for_selector("#status[data-state='connected']")
        assert fake.auth_calls[-1]["ClientId"] == "restarted-client-id"
        assert "connected" in (await status.inner_text()).lower()
    finally:
        await new_cognito.cleanup()


async def test_a_refresh_token_the_restarted_stack_does_not_know_leads_to_sign_in(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.gate.set()
    await signed_in(page, url)
    # Restarted with Cognito at the same address: the old app client is unknown there (ResourceNotFoundException),
    # which no retry changes.
    fake.client_id = "restarted-client-id"
    fake.tokens.clear()
    await fake.drop_connections()
    await page.wait_for_selector("#sign-in-view:not([hidden])", timeout=8_000)
    assert "sign in again" in await page.inner_text("#sign-in-error")
    refreshes = [call for call in fake.auth_calls if call.get("AuthFlow") == "REFRESH_TOKEN_AUTH"]
    assert len(refreshes) == 1, "asked once, not in a loop"


# --- Markdown, hostile text, phone layout, sessions, usage, token expiry, rate limits ---------------------------


async def signed_in(page: Any, url: str) -> None:
    await sign_in(page, url)
    await page.wait_for_selector("#status[data-state='connected']")


async def ask(page: Any, text: str) -> Any:
    await page.fill("#message", text)
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")
    return page.locator(REPLY).last


async def test_markdown_renders_bold_code_lists_code_blocks_and_tables(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.conversations.clear()
    await signed_in(page, url)
    reply = await ask(page, "show me markdown")
    text = reply.locator(".text")
    assert await text.locator("strong").all_text_contents() == ["bold"]
    assert "inline code" in await text.locator("p code").all_text_contents()
    assert await text.locator("ul > li").all_text_contents() == ["first item", "second item"]
    assert await text.locator("pre code").text_content() == 'print("hello")\n'
    font = await text.locator("pre code").evaluate("node => getComputedStyle(node).fontFamily")
    assert "mono" in font.lower() or "consolas" in font.lower(), font
    assert await text.locator("th").all_text_contents() == ["planet", "moons"]
    assert await text.locator("td").all_text_contents() == ["Earth", "1", "Mars", "2"]
    # The code block has a copy button that copies exactly the code.
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = reply.get_by_role("button", name="Copy code")
    await copy.click()
    await page.wait_for_function("document.querySelector('.code-block .copy').textContent === 'Copied'")
    assert await page.evaluate("navigator.clipboard.readText()") == 'print("hello")\n'


async def test_a_reset_frame_replaces_the_dropped_attempts_text(backend: tuple[FakeBackend, str], page: Any) -> None:
    _, url = backend
    await signed_in(page, url)
    reply = await ask(page, "drop and retry")
    assert (await reply.locator(".text").inner_text()).strip() == "Storms at sea are calm today."


async def test_hostile_model_text_renders_inert(backend: tuple[FakeBackend, str], page: Any) -> None:
    _, url = backend
    await signed_in(page, url)
    reply = await ask(page, "be hostile")
    messages = page.locator("#messages")
    for tag in ("img", "script", "iframe", "svg", "details", "object", "embed"):
        assert await messages.locator(tag).count() == 0, tag
    assert await page.evaluate("window.__xss") is None
    # Every link that survives is http(s), opens in a new tab and cannot reach back to this page.
    links = await reply.locator(".text a").evaluate_all(
        "links => links.map(a => [a.getAttribute('href'), a.target, a.rel])"
    )
    hrefs = [href for href, _, _ in links if href is not None]
    assert "https://example.com/docs" in hrefs
    assert all(href.startswith(("https:", "http:", "mailto:")) for href in hrefs), links
    for href, target, rel in links:
        if href is not None:
            assert target == "_blank"
            assert "noopener" in rel.split()
    # Raw HTML is shown as text, so the user sees what the model wrote.
    assert "<script>window.__xss=2</script>" in await reply.locator(".text").inner_text()
    await page.wait_for_timeout(200)  # an onerror/onload would have fired by now
    assert await page.evaluate("window.__xss") is None


async def test_the_content_security_policy_blocks_inline_script(backend: tuple[FakeBackend, str]) -> None:
    _, url = backend
    async with open_page(timeout_ms=10_000, bypass_csp=False) as page:
        await page.goto(url)
        policy = await page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
        assert "script-src 'self'" in policy
        assert "connect-src" in policy
        assert "127.0.0.1" in policy
        await page.wait_for_selector("#status[data-state='signed-out']")  # the page's own modules ran
        await page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
            " document.body.append(s); }"
        )
        assert await page.evaluate("() => window.__inline") is None


async def test_phone_layout_keeps_the_composer_on_screen_and_the_list_in_a_drawer(
    backend: tuple[FakeBackend, str],
) -> None:
    _, url = backend
    async with open_page(timeout_ms=10_000, viewport={"width": 390, "height": 844}, is_mobile=True) as page:
        await signed_in(page, url)
        nav = page.get_by_role("navigation", name="Conversations")
        assert not await nav.is_visible()
        # The latest conversation opened by itself; a long reply with a wide table and code follows.
        await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")
        await ask(page, "show me markdown")
        await page.fill("#message", "x" * 300)
        composer = await page.locator("#composer").bounding_box()
        assert composer is not None
        assert composer["y"] + composer["height"] <= 844
        assert await page.get_by_role("button", name="Send").is_visible()
        sideways = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert sideways <= 0, f"the page scrolls sideways by {sideways}px"
        await page.fill("#message", "")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "web-phone.png"))

        # The drawer: opens from the header, lists the conversations, closes on choice (and Escape).
        menu = page.locator("#menu")
        await menu.click()
        await nav.wait_for(state="visible")
        assert await menu.get_attribute("aria-expanded") == "true"
        await page.keyboard.press("Escape")
        await page.wait_for_function("!document.querySelector('#sidebar').classList.contains('open')")
        await menu.click()
        await page.click("#conversations button:has-text('Trip to Kyoto')")
        await page.wait_for_function("!document.querySelector('#sidebar').classList.contains('open')")


async def test_a_reload_keeps_the_session_and_reopens_the_conversation(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    await signed_in(page, url)
    await ask(page, "show me markdown")
    await page.reload()
    await page.wait_for_selector("#status[data-state='connected']")
    assert await page.locator("#sign-in-view").is_hidden()
    # The access token was in memory only: the reload got a new one from the refresh token.
    assert fake.auth_calls[-1]["AuthFlow"] == "REFRESH_TOKEN_AUTH"
    stored = await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert "access-token" not in stored
    assert "refresh-1" not in await page.evaluate("JSON.stringify(localStorage)")
    # The conversation that was open is open again.
    assert [f for f in fake.received if f["action"] == "getHistory"][-1]["conversationId"] == "c_new"
    await page.wait_for_selector(f"{REPLY}:has-text('Start at Fushimi Inari at dawn.')")
    # Signing out ends it: a reload shows the sign-in form.
    await page.click("#sign-out")
    await page.reload()
    await page.wait_for_selector("#status[data-state='signed-out']")
    assert await page.locator("#sign-in-view").is_visible()


async def test_usage_meter_shows_what_is_left_and_refreshes_after_each_reply(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    await signed_in(page, url)
    usage = page.locator("#usage")
    await page.wait_for_selector("#usage:has-text('190 of 200 messages')")
    assert await usage.get_attribute("data-output-tokens-left") == "199500"
    await ask(page, "show me markdown")
    await page.wait_for_selector("#usage:has-text('189 of 200 messages')")
    assert [f["action"] for f in fake.received].count("getUsage") == 2


async def test_demo_sign_in_offline_badge_and_empty_state(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    fake.conversations.clear()
    fake.model = "offline-demo"
    await page.goto(url)
    await page.get_by_role("button", name="Use the demo account").click()
    await page.wait_for_selector("#status[data-state='connected']")
    assert fake.auth_calls == [{"AuthFlow": "DEMO"}]
    # Nothing yet: the page says what to try; a suggestion fills the message box.
    empty = page.locator("#empty-state")
    await empty.wait_for()
    assert await page.locator("#model-badge").is_hidden()
    await empty.get_by_role("button", name="What time is it in Tokyo?").click()
    assert await page.input_value("#message") == "What time is it in Tokyo?"
    await page.fill("#message", "show me markdown")
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}[data-state='done']")
    assert await empty.is_hidden()
    assert await page.locator("#model-badge").is_visible()
    assert "offline-demo" in await page.locator(f"{REPLY} .meta").inner_text()


async def test_token_expired_renews_the_token_reconnects_and_resends(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.gate.set()
    await signed_in(page, url)
    await wait_until(lambda: fake.connects == 1)
    # The page's start-up requests first (the conversation list, usage, the latest conversation's history): armed
    # earlier, the expiry could hit one of those instead of the message, as it did on a loaded machine.
    await wait_until(lambda: {"listConversations", "getUsage", "getHistory"} <= {f["action"] for f in fake.received})
    fake.expire_next = True
    await page.fill("#message", "still there?")
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")
    assert fake.connects == 2
    assert fake.auth_calls[-1]["AuthFlow"] == "REFRESH_TOKEN_AUTH"
    assert await page.locator("#messages li.error").count() == 0
    refused, resent = (f for f in fake.received if f["action"] == "sendMessage")
    assert resent == refused, "the refused frame was sent again, as it was, on the new connection"


async def test_sign_out_revokes_the_refresh_token(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    fake.gate.set()
    await signed_in(page, url)
    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in-view:not([hidden])")
    await wait_until(lambda: bool(fake.revoked))
    assert fake.revoked == [{"Token": "refresh-1", "ClientId": CLIENT_ID}]
    # Nothing left to resume: a reload stays signed out.
    await page.reload()
    await page.wait_for_function("!document.querySelector('#sign-in').disabled")
    assert await page.locator("#sign-in-view").is_visible()
    assert fake.connects == 1


async def test_token_revoked_signs_out_instead_of_reconnecting(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    fake.gate.set()
    await signed_in(page, url)
    await wait_until(lambda: {"listConversations", "getUsage", "getHistory"} <= {f["action"] for f in fake.received})
    fake.revoke_next = True
    await page.fill("#message", "still there?")
    await page.click("#send")
    await page.wait_for_selector("#sign-in-view:not([hidden])")
    assert "signed out" in (await page.locator("#sign-in-error").inner_text()).lower()
    await asyncio.sleep(1.0)
    # No refresh (it cannot help) and no reconnect: the user signs in again.
    assert fake.connects == 1
    assert all(call.get("AuthFlow") != "REFRESH_TOKEN_AUTH" for call in fake.auth_calls)


async def test_rate_limited_message_comes_back_to_the_box_and_send_waits(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    _, url = backend
    await signed_in(page, url)
    await page.fill("#message", "too fast")
    await page.click("#send")
    await page.wait_for_selector("#messages li.error[data-code='rate_limited']")
    assert await page.input_value("#message") == "too fast"
    assert await page.locator("#send").is_disabled()
    assert "try again in 1.5 s" in await page.locator("#messages li.error").inner_text()
    await page.wait_for_function("!document.querySelector('#send').disabled", timeout=5_000)


@pytest.mark.parametrize(
    ("paste", "says"),
    [
        ("x" * 40_000, "40,000 characters"),  # 40 KB: the gateway would close the connection
        ("y" * 20_000, "20,000 characters"),  # under 32 KB, but over the 16,000-character limit
        ("日本語" * 4_000, "KB once encoded"),  # 12,000 characters, ~36 KB of UTF-8
    ],
    ids=["40KB", "20000chars", "36KB-of-CJK"],
)
async def test_a_message_over_the_limit_is_refused_before_sending_and_kept_in_the_box(
    backend: tuple[FakeBackend, str], page: Any, paste: str, says: str
) -> None:
    fake, url = backend
    await signed_in(page, url)
    await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")
    shown = await page.locator("#messages li").count()
    await page.fill("#message", paste)
    await page.click("#send")
    note = page.locator("#composer-note")
    await note.wait_for()
    assert says in await note.inner_text()
    await page.press("#message", "Enter")  # again, by keyboard: still one message, not two
    await asyncio.sleep(1.0)  # a reconnect (the old page's loop) would have happened by now
    assert await page.input_value("#message") == paste, "the typed text was kept"
    assert await page.locator("#messages li").count() == shown, "no bubble, no error in the list"
    assert await page.get_by_text(says).count() == 1, "one message, once"
    assert says not in await page.inner_text("#status")
    assert await page.get_attribute("#message", "aria-invalid") == "true"
    assert [f["action"] for f in fake.received].count("sendMessage") == 0, "never sent"
    assert fake.connects == 1, "at most one WebSocket opened"
    assert await page.locator("#send").is_enabled()
    # Shortened, it goes.
    fake.gate.set()
    await page.fill("#message", "shorter now")
    assert await note.is_hidden()
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")


async def test_a_frame_the_server_refused_as_too_large_is_never_sent_again(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    await signed_in(page, url)
    await wait_until(lambda: {"listConversations", "getUsage", "getHistory"} <= {f["action"] for f in fake.received})
    # Within the page's limits, but the server (a stage with a smaller frame budget) closes with 1009.
    await page.fill("#message", "too big for the server")
    await page.click("#send")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='failed']")
    await wait_until(lambda: fake.connects == 2)
    await page.wait_for_selector("#status[data-state='connected']")
    await asyncio.sleep(1.0)
    assert [f["action"] for f in fake.received].count("sendMessage") == 1, "the refused frame was sent again"
    assert fake.connects == 2
    assert await page.input_value("#message") == "too big for the server"
    assert "too large" in await page.locator(f"{REPLY}:last-child .meta").inner_text()


async def test_every_request_of_a_page_load_succeeds_the_favicon_included(backend: tuple[FakeBackend, str]) -> None:
    _, url = backend
    async with open_page(timeout_ms=10_000, bypass_csp=False) as page:
        failed: list[str] = []
        page.on(
            "response",
            lambda response: failed.append(f"{response.status} {response.url}") if response.status >= 400 else None,
        )
        page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
        await signed_in(page, url)
        await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")
        await asyncio.sleep(0.5)  # the browser asks for the tab's icon after the page loads
        assert failed == [], f"requests that failed: {failed}"
        icon = await page.get_attribute("link[rel='icon']", "href")
        # What the browser fetches for the tab's icon, as the page's CSP allows it.
        loaded = await page.evaluate(
            """href => new Promise(done => {
                const img = new Image();
                img.onload = () => done(img.naturalWidth > 0);
                img.onerror = () => done(false);
                img.src = new URL(href, document.baseURI).href;
            })""",
            icon,
        )
        assert loaded, f"the icon {icon} did not load"


FITS = """selector => {
    const el = document.querySelector(selector);
    const box = el.getBoundingClientRect();
    return {
        text: el.textContent,
        clipped: el.scrollWidth > el.clientWidth,
        inside: box.left >= 0 && box.right <= document.documentElement.clientWidth,
    };
}"""


@pytest.mark.parametrize("width", [320, 390, 1280, 1440])
async def test_the_demo_button_fits_and_the_phone_header_shows_the_connection_state(
    backend: tuple[FakeBackend, str], width: int
) -> None:
    fake, url = backend
    fake.demo_username = "demo@example.com"
    fake.model = "offline-demo"
    phone = width < 760
    options: dict[str, Any] = {"is_mobile": True} if phone else {}
    async with open_page(timeout_ms=10_000, viewport={"width": width, "height": 800}, **options) as page:
        await page.goto(url)
        demo = page.get_by_role("button", name="Use the demo account (demo@example.com)")
        await demo.wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"web-sign-in-{width}.png"))
        button = await page.evaluate(FITS, "#demo-sign-in")
        assert not button["clipped"], f"at {width}px the demo button's text spills out of it"
        assert button["inside"], f"at {width}px the demo button is off the screen"
        form = await page.locator("#sign-in-form").bounding_box()
        box = await demo.bounding_box()
        assert form is not None
        assert box is not None
        assert form["x"] <= box["x"]
        assert box["x"] + box["width"] <= form["x"] + form["width"]

        await demo.click()
        await page.wait_for_selector("#status[data-state='connected']")
        await ask(page, "show me markdown")  # the offline badge joins the header
        await page.wait_for_selector("#model-badge:not([hidden])")
        await page.screenshot(path=str(ARTIFACTS / f"web-header-{width}.png"))
        status = await page.evaluate(FITS, "#status")
        assert status["text"].startswith("Connected as demo@example.com")
        assert not status["clipped"], f"at {width}px the header cuts the connection state"
        assert status["inside"]
        for control in ("#sign-out", "#model-badge") + (("#menu",) if phone else ()):
            assert (await page.evaluate(FITS, control))["inside"], f"{control} is off the screen at {width}px"
        sideways = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert sideways <= 0

        # The sidebar's buttons fit in it, their labels whole (on phones, in the open drawer).
        if phone:
            await page.click("#menu")
            await page.wait_for_function("getComputedStyle(document.querySelector('#sidebar')).transform === 'none'")
        sidebar = await page.locator("#sidebar").bounding_box()
        assert sidebar is not None
        for control in ("#new-conversation", "#delete-all"):
            fits = await page.evaluate(FITS, control)
            assert not fits["clipped"], f"at {width}px the text of {control} spills out of it"
            box = await page.locator(control).bounding_box()
            assert box is not None
            assert sidebar["x"] <= box["x"]
            assert box["x"] + box["width"] <= sidebar["x"] + sidebar["width"], f"{control} spills out of the sidebar"


async def test_keyboard_only_chat_and_focus_after_stop(backend: tuple[FakeBackend, str], page: Any) -> None:
    _, url = backend
    await page.goto(url)
    await page.wait_for_function("!document.querySelector('#sign-in').disabled")
    await page.focus("#password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#status[data-state='connected']")
    assert await page.evaluate("document.activeElement.id") == "message"
    # Only the status line is a live region; the list is not re-read on every token.
    assert await page.get_attribute("#messages", "aria-live") is None
    assert await page.get_attribute("#status", "aria-live") == "polite"
    await page.keyboard.type("tell me a long story")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"{REPLY}:last-child .text:has-text('Once upon a time')")
    await page.get_by_role("button", name="Stop").click()
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='cancelled']")
    assert await page.evaluate("document.activeElement.id") == "message"
    # Escape stops a reply from the message box too.
    await page.keyboard.type("tell me a long story")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='streaming'] .text:has-text('Once upon a time')")
    await page.keyboard.press("Escape")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='cancelled']")


async def test_desktop_screenshot(backend: tuple[FakeBackend, str], page: Any) -> None:
    fake, url = backend
    fake.model = "offline-demo"
    await signed_in(page, url)
    await page.wait_for_selector("#messages li.message.user:has-text('Plan a day in Kyoto')")
    await ask(page, "show me markdown")
    ARTIFACTS.mkdir(exist_ok=True)
    # The README's screenshots are taken offline through the real local stack, not against this scripted backend:
    # UPDATE_SCREENSHOTS=1 with tests/e2e/test_web_page_e2e.py (the two-tab test).
    await page.screenshot(path=str(ARTIFACTS / "web-desktop.png"))


async def test_the_token_is_renewed_before_it_expires_and_the_connection_moves_to_it(
    backend: tuple[FakeBackend, str], page: Any
) -> None:
    fake, url = backend
    fake.expires_in = 61  # renewed a minute before expiry: here, after the page's 5-second floor
    await signed_in(page, url)
    await wait_until(lambda: fake.connects == 1)
    await wait_until(lambda: fake.connects == 2, timeout=15)
    assert [call["AuthFlow"] for call in fake.auth_calls] == ["USER_SRP_AUTH", "REFRESH_TOKEN_AUTH"]
    await page.wait_for_selector("#status[data-state='connected']")
    assert len(fake.sockets) == 1, "the old connection was closed"
    fake.gate.set()
    await ask(page, "still there?")


async def test_a_double_clicked_send_sends_the_message_once(backend: tuple[FakeBackend, str], page: Any) -> None:
    """As an impatient person does: Send double-clicked, then Enter pressed at once too."""
    fake, url = backend
    fake.gate.set()
    await signed_in(page, url)
    await page.fill("#message", "only once, please")
    await page.dblclick("#send")
    await page.press("#message", "Enter")
    await page.wait_for_selector(f"{REPLY}:last-child[data-state='done']")
    await asyncio.sleep(0.2)  # anything sent twice has arrived
    sent = [f for f in fake.received if f["action"] == "sendMessage"]
    assert [f["message"] for f in sent] == ["only once, please"]
    users = await page.locator("#messages li.message.user .text").all_text_contents()
    assert users.count("only once, please") == 1
