"""The terminal chat client: its protocol session (reply assembly, frames of other tabs, errors, cancel), its
Cognito sign-in against moto, and a real WebSocket round trip against a scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from scripts.chat import (
    AuthenticationFailed,
    Backoff,
    ChatClient,
    ChatEvent,
    ChatSession,
    CognitoSignIn,
    Connected,
    ConversationList,
    Disconnected,
    Fatal,
    HistoryReceived,
    ProtocolProblem,
    ReplyAccepted,
    ReplyFinished,
    ServerError,
    TextReceived,
    TextReset,
    ToolUpdate,
    load_outputs_file,
    load_stack_file,
    with_auth,
)
from scripts.local_stack.aws.moto_patches import revoke_cognito_tokens, verify_cognito_sign_in
from tests.conftest import CognitoPool


def delta(message_id: str, seq: int, text: str) -> dict[str, Any]:
    return {"type": "delta", "messageId": message_id, "seq": seq, "text": text}


def texts(events: list[ChatEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextReceived)]


# --- ChatSession ------------------------------------------------------------------------------------------------


def test_send_message_builds_the_contract_frame_and_continues_the_accepted_conversation() -> None:
    session = ChatSession()
    message_id, frame = session.send_message("hello")
    assert frame == {"action": "sendMessage", "message": "hello", "messageId": message_id}
    assert session.in_flight == message_id

    events = session.handle({"type": "accepted", "messageId": message_id, "conversationId": "c_1"})
    assert events == [ReplyAccepted(message_id, "c_1", own=True)]
    assert session.conversation_id == "c_1"

    session.handle(
        {
            "type": "done",
            "messageId": message_id,
            "conversationId": "c_1",
            "usage": {"inputTokens": 3, "outputTokens": 4},
        }
    )
    assert session.in_flight is None
    _, second = session.send_message("again")
    assert second["conversationId"] == "c_1"


def test_deltas_assemble_in_seq_order_and_a_resent_frame_is_ignored() -> None:
    session = ChatSession()
    mid, _ = session.send_message("hi")
    got: list[ChatEvent] = []
    for frame in [delta(mid, 0, "Hel"), delta(mid, 1, "lo, "), delta(mid, 1, "lo, "), delta(mid, 2, "world")]:
        got += session.handle(frame)
    # The re-sent seq 1 (a worker crash re-sends its last frame) produced nothing.
    assert texts(got) == ["Hel", "lo, ", "world"]
    assert session.handle(delta(mid, 0, "Hel")) == []
    [finished] = session.handle(
        {
            "type": "done",
            "messageId": mid,
            "conversationId": "c",
            "usage": {"inputTokens": 5, "outputTokens": 3},
            "model": "gpt-x",
        }
    )
    assert isinstance(finished, ReplyFinished)
    assert (finished.outcome, finished.text, finished.incomplete) == ("done", "Hello, world", False)
    assert finished.usage is not None
    assert finished.usage.output_tokens == 3
    assert finished.model == "gpt-x"
    # A duplicate `done` or a straggling delta after it changes nothing.
    assert session.handle({"type": "done", "messageId": mid, "conversationId": "c", "usage": {}}) == []
    assert session.handle(delta(mid, 3, "!")) == []
    assert session.replies[mid].text == "Hello, world"


def test_an_early_delta_waits_for_the_missing_one() -> None:
    session = ChatSession()
    mid, _ = session.send_message("hi")
    assert session.handle(delta(mid, 2, "C")) == []
    assert session.handle(delta(mid, 1, "B")) == []
    assert session.handle(delta(mid, 2, "C")) == []  # duplicate of a held-back frame
    assert texts(session.handle(delta(mid, 0, "A"))) == ["ABC"]
    assert session.replies[mid].text == "ABC"


def test_a_gap_that_never_fills_is_released_at_done_and_flagged() -> None:
    session = ChatSession()
    mid, _ = session.send_message("hi")
    session.handle(delta(mid, 0, "A"))
    session.handle(delta(mid, 2, "C"))  # seq 1 was sent while we were reconnecting
    [finished] = session.handle({"type": "done", "messageId": mid, "conversationId": "c", "usage": {}})
    assert isinstance(finished, ReplyFinished)
    assert finished.incomplete
    assert finished.late_text == "C"
    assert finished.text == "AC"


def test_a_reset_voids_the_text_from_its_offset_and_seq_counts_from_zero_again() -> None:
    session = ChatSession()
    mid, _ = session.send_message("hi")

    def at(seq: int, offset: int, text: str) -> dict[str, Any]:
        return {**delta(mid, seq, text), "offset": offset}

    session.handle(at(0, 0, "Let me check. "))
    session.handle(at(1, 14, "It is"))
    session.handle(at(3, 30, "held beyond a gap"))  # of the dropped attempt: must not survive the reset
    [reset] = session.handle({"type": "reset", "messageId": mid, "offset": 14})
    assert reset == TextReset(mid, 14, own=True)
    assert session.replies[mid].text == "Let me check. "
    assert texts(session.handle(at(0, 14, "It is noon."))) == ["It is noon."]
    [finished] = session.handle({"type": "done", "messageId": mid, "conversationId": "c", "usage": {}})
    assert isinstance(finished, ReplyFinished)
    assert finished.text == "Let me check. It is noon."
    assert not finished.incomplete


def test_frames_of_a_reply_from_another_tab_are_shown_without_touching_ours() -> None:
    session = ChatSession()
    mine, _ = session.send_message("mine")
    events = session.handle({"type": "accepted", "messageId": "other", "conversationId": "c_other"})
    events += session.handle(delta("other", 0, "theirs"))
    events += session.handle({"type": "tool", "messageId": "other", "name": "clock", "status": "started"})
    assert events == [
        ReplyAccepted("other", "c_other", own=False),
        TextReceived("other", "theirs", own=False),
        ToolUpdate("other", "clock", "started", own=False),
    ]
    finished = session.handle({"type": "done", "messageId": "other", "conversationId": "c_other", "usage": {}})
    assert isinstance(finished[0], ReplyFinished)
    assert not finished[0].own
    # Another tab's conversation does not become ours, and our message is still waiting.
    assert session.conversation_id is None
    assert session.in_flight == mine


def test_cancel_targets_the_message_in_flight_and_cancelled_ends_it() -> None:
    session = ChatSession()
    assert session.cancel_frame() is None
    mid, _ = session.send_message("long story")
    assert session.cancel_frame() == {"action": "cancel", "messageId": mid}
    session.handle(delta(mid, 0, "Once upon"))
    [finished] = session.handle({"type": "cancelled", "messageId": mid})
    assert isinstance(finished, ReplyFinished)
    assert (finished.outcome, finished.text) == ("cancelled", "Once upon")
    assert session.in_flight is None
    assert session.handle(delta(mid, 1, " a time")) == []
    assert session.handle({"type": "cancelled", "messageId": mid}) == []


def test_an_error_for_our_message_fails_it() -> None:
    session = ChatSession()
    mid, _ = session.send_message("hi")
    session.handle({"type": "accepted", "messageId": mid, "conversationId": "c"})
    error, finished = session.handle(
        {"type": "error", "messageId": mid, "code": "quota_exceeded", "message": "Daily limit reached."}
    )
    assert error == ServerError(mid, "quota_exceeded", "Daily limit reached.")
    assert isinstance(finished, ReplyFinished)
    assert finished.outcome == "failed"
    assert session.in_flight is None


def test_an_error_without_message_id_fails_only_an_unaccepted_send() -> None:
    session = ChatSession()
    mid, _ = session.send_message("x" * 10)
    events = session.handle({"type": "error", "code": "too_large", "message": "Too long."})
    assert [type(e) for e in events] == [ServerError, ReplyFinished]
    assert session.in_flight is None

    mid, _ = session.send_message("ok")
    session.handle({"type": "accepted", "messageId": mid, "conversationId": "c"})
    events = session.handle({"type": "error", "code": "bad_request", "message": "Bad getHistory."})
    assert events == [ServerError(None, "bad_request", "Bad getHistory.")]
    assert session.in_flight == mid


def test_conversation_frames_and_unreadable_frames() -> None:
    session = ChatSession()
    [_started] = session.handle({"type": "conversation", "conversationId": "c_new"})
    assert session.conversation_id == "c_new"
    assert session.history_frame() == {"action": "getHistory", "conversationId": "c_new"}
    [listing] = session.handle(
        {"type": "conversations", "items": [{"conversationId": "c_new", "title": "Hi", "updatedAt": "2026-01-01"}]}
    )
    assert isinstance(listing, ConversationList)
    assert listing.items[0].title == "Hi"
    [history] = session.handle(
        {
            "type": "history",
            "conversationId": "c_new",
            "messages": [{"role": "user", "text": "q"}, {"role": "assistant", "text": "a", "messageId": "m"}],
        }
    )
    assert isinstance(history, HistoryReceived)
    assert [(m.role, m.text) for m in history.messages] == [("user", "q"), ("assistant", "a")]
    for raw in ["not json", "[1]", '{"type": "delta", "messageId": "m"}', '{"type": "surprise"}']:
        [problem] = session.handle_text(raw)
        assert isinstance(problem, ProtocolProblem), raw


# --- Connection info and URL ------------------------------------------------------------------------------------


def test_with_auth_sets_the_token_query_parameter() -> None:
    url = with_auth("wss://x.example/dev?Auth=old&keep=1", "a.b/c+d")
    query = parse_qs(urlsplit(url).query)
    assert query == {"Auth": ["a.b/c+d"], "keep": ["1"]}


def test_connection_info_from_stack_file_and_cdk_outputs(tmp_path: Path) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(
        json.dumps(
            {
                "websocketUrl": "ws://127.0.0.1:1/local",
                "region": "us-east-1",
                "cognitoEndpoint": "http://127.0.0.1:2",
                "userPoolId": "us-east-1_abc",
                "userPoolClientId": "client",
                "demoUsername": "demo",
                "demoPassword": "pw",
            }
        )
    )
    info = load_stack_file(stack)
    assert (info.cognito_endpoint, info.demo_username, info.demo_password) == ("http://127.0.0.1:2", "demo", "pw")

    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "Assistant-prod": {"WebSocketUrl": "wss://prod", "UserPoolId": "eu-west-1_p", "UserPoolClientId": "p"},
                "Assistant-dev": {"WebSocketUrl": "wss://dev", "UserPoolId": "eu-west-1_d", "UserPoolClientId": "d"},
            }
        )
    )
    info = load_outputs_file(outputs, "dev")
    assert (info.websocket_url, info.user_pool_client_id, info.region) == ("wss://dev", "d", "eu-west-1")
    assert info.cognito_endpoint is None


# --- Sign-in against moto's Cognito -----------------------------------------------------------------------------


@pytest.fixture
def srp_client(cognito_pool: CognitoPool) -> str:
    """An app client of the pool configured as the deployed one: SRP and refresh only (no USER_PASSWORD_AUTH), with
    moto patched as the local stack patches it, so SRP really checks the password."""
    verify_cognito_sign_in()
    response = cognito_pool.client.create_user_pool_client(
        UserPoolId=cognito_pool.user_pool_id,
        ClientName="terminal",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )
    return str(response["UserPoolClient"]["ClientId"])


def _sign_in(pool: CognitoPool, client_id: str, password: str, **kwargs: Any) -> CognitoSignIn:
    return CognitoSignIn(
        user_pool_id=pool.user_pool_id,
        client_id=client_id,
        username=pool.username,
        password=password,
        region=pool.region,
        **kwargs,
    )


def test_cognito_sign_in_caches_the_token_and_renews_it_before_expiry(
    cognito_pool: CognitoPool, srp_client: str
) -> None:
    now = [0.0]
    sign_in = _sign_in(cognito_pool, srp_client, cognito_pool.password, clock=lambda: now[0])
    first = sign_in.access_token()
    assert first.count(".") == 2  # a JWT
    assert cognito_pool.client.get_user(AccessToken=first)["Username"] == cognito_pool.username
    assert sign_in.access_token() == first
    now[0] += 3600  # expired: renewed (refresh token or password), never the stale one
    assert sign_in.access_token() != first
    sign_in.invalidate()
    assert sign_in.access_token()


def test_cognito_sign_in_signs_in_again_with_srp_when_the_refresh_token_is_revoked(
    cognito_pool: CognitoPool, srp_client: str
) -> None:
    now = [0.0]
    calls: list[str] = []
    idp = cognito_pool.client

    class Recording:
        def initiate_auth(self, **kwargs: Any) -> Any:
            calls.append(kwargs["AuthFlow"])
            return idp.initiate_auth(**kwargs)

        def respond_to_auth_challenge(self, **kwargs: Any) -> Any:
            calls.append(kwargs["ChallengeName"])
            return idp.respond_to_auth_challenge(**kwargs)

        def revoke(self, token: str) -> None:
            idp.revoke_token(Token=token, ClientId=srp_client)

    sign_in = _sign_in(cognito_pool, srp_client, cognito_pool.password, cognito=Recording(), clock=lambda: now[0])
    sign_in.access_token()
    assert calls == ["USER_SRP_AUTH", "PASSWORD_VERIFIER"]
    now[0] += 3600
    sign_in.access_token()
    assert calls[-1] == "REFRESH_TOKEN_AUTH"
    revoke_cognito_tokens()
    Recording().revoke(str(sign_in._refresh_token))
    now[0] += 3600
    assert sign_in.access_token()
    assert calls[-3:] == ["REFRESH_TOKEN_AUTH", "USER_SRP_AUTH", "PASSWORD_VERIFIER"]
    assert "USER_PASSWORD_AUTH" not in calls


def test_cognito_sign_in_with_a_wrong_password_fails_for_good(cognito_pool: CognitoPool, srp_client: str) -> None:
    sign_in = _sign_in(cognito_pool, srp_client, "wrong-password-1A")
    with pytest.raises(AuthenticationFailed, match="refused: Incorrect username or password"):
        sign_in.access_token()


def test_print_token_signs_in_with_srp_and_prints_only_the_token(
    cognito_pool: CognitoPool, srp_client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What docs/deploy.md gives wscat: the AWS CLI cannot do SRP, and the app client allows nothing else."""
    from scripts.chat import cli

    outputs = tmp_path / "outputs.json"
    stage = {"WebSocketUrl": "wss://dev", "UserPoolId": cognito_pool.user_pool_id, "UserPoolClientId": srp_client}
    outputs.write_text(json.dumps({"Assistant-dev": stage}))
    argv = ["--outputs-file", str(outputs), "--username", cognito_pool.username, "--print-token"]
    assert cli.main([*argv, "--password", cognito_pool.password]) == 0
    printed = capsys.readouterr().out.strip()
    assert cognito_pool.client.get_user(AccessToken=printed)["Username"] == cognito_pool.username
    with pytest.raises(SystemExit, match="Incorrect username or password"):
        cli.main([*argv, "--password", "wrong-password-1A"])


# --- A real WebSocket round trip --------------------------------------------------------------------------------


@dataclass
class FakeTokens:
    """Hands out tokens in order; ``invalidate`` moves to the next one."""

    tokens: list[str]
    index: int = 0
    calls: int = 0
    fail_with: Exception | None = None

    def access_token(self) -> str:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return self.tokens[self.index]

    def invalidate(self) -> None:
        self.index += 1


@dataclass
class ScriptedServer:
    """Plays the server side of the protocol; behaviours a test can switch on."""

    valid_token: str = "good-token"
    received: list[dict[str, Any]] = field(default_factory=list)
    connections: list[ServerConnection] = field(default_factory=list)
    refused: int = 0
    drop_next_send: bool = False
    cancel_seen: asyncio.Event = field(default_factory=asyncio.Event)

    def check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        token = parse_qs(urlsplit(request.path).query).get("Auth", [""])[0]
        if token != self.valid_token:
            self.refused += 1
            return Response(HTTPStatus.UNAUTHORIZED.value, "Unauthorized", Headers(), b"")
        return None

    async def broadcast(self, frame: dict[str, Any]) -> None:
        for connection in list(self.connections):
            try:
                await connection.send(json.dumps(frame))
            except ConnectionClosed:
                self.connections.remove(connection)

    async def handle(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        try:
            async for raw in connection:
                frame = json.loads(raw)
                self.received.append(frame)
                await self.on_frame(connection, frame)
        except ConnectionClosed:
            pass
        finally:
            if connection in self.connections:
                self.connections.remove(connection)

    async def on_frame(self, connection: ServerConnection, frame: dict[str, Any]) -> None:
        action = frame["action"]
        if action == "sendMessage":
            if self.drop_next_send:
                self.drop_next_send = False
                await connection.close(code=1011, reason="worker lost")
                return
            mid = frame["messageId"]
            await connection.send(json.dumps({"type": "accepted", "messageId": mid, "conversationId": "c_1"}))
            if frame["message"] == "stream":
                await self.broadcast(delta(mid, 0, "Hello"))
                await self.broadcast({"type": "tool", "messageId": mid, "name": "get_time", "status": "started"})
                await self.broadcast({"type": "tool", "messageId": mid, "name": "get_time", "status": "done"})
                await self.broadcast(delta(mid, 1, ", it is "))
                await self.broadcast(delta(mid, 1, ", it is "))  # re-sent after a "crash"
                await self.broadcast(delta(mid, 2, "noon."))
                usage = {"inputTokens": 7, "outputTokens": 5}
                await self.broadcast({"type": "done", "messageId": mid, "conversationId": "c_1", "usage": usage})
            elif frame["message"] == "long":
                await self.broadcast(delta(mid, 0, "Once upon a time"))
        elif action == "cancel":
            self.cancel_seen.set()
            await self.broadcast({"type": "cancelled", "messageId": frame["messageId"]})
        elif action == "listConversations":
            items = [{"conversationId": "c_1", "title": "Greeting", "updatedAt": "2026-05-01T10:00:00Z"}]
            await connection.send(json.dumps({"type": "conversations", "items": items}))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedServer, str]]:
    behaviour = ScriptedServer()
    server: Server = await serve(behaviour.handle, "127.0.0.1", 0, process_request=behaviour.check_auth)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield behaviour, f"ws://127.0.0.1:{port}/local"
    finally:
        server.close()
        await server.wait_closed()


async def until(client: ChatClient, predicate: type | Any, timeout: float = 5.0) -> list[ChatEvent]:
    """Collect events until one matches ``predicate`` (a type or a callable); return them all."""
    seen: list[ChatEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            seen.append(event)
            matched = isinstance(event, predicate) if isinstance(predicate, type) else predicate(event)
            if matched:
                return seen


async def test_round_trip_streams_a_reply_with_tools_and_lists_conversations(
    scripted: tuple[ScriptedServer, str],
) -> None:
    server, url = scripted
    async with ChatClient(url, FakeTokens(["good-token"]), open_timeout=5) as client:
        await client.wait_connected(5)
        mid = await client.send_message("stream")
        events = await until(client, ReplyFinished)
        assert texts(events) == ["Hello", ", it is ", "noon."]
        assert [(e.name, e.status) for e in events if isinstance(e, ToolUpdate)] == [
            ("get_time", "started"),
            ("get_time", "done"),
        ]
        finished = events[-1]
        assert isinstance(finished, ReplyFinished)
        assert (finished.message_id, finished.text, finished.outcome) == (mid, "Hello, it is noon.", "done")
        assert client.session.conversation_id == "c_1"

        await client.send(client.session.list_conversations_frame())
        listing = (await until(client, ConversationList))[-1]
        assert isinstance(listing, ConversationList)
        assert listing.items[0].conversation_id == "c_1"
    assert server.received[0] == {"action": "sendMessage", "message": "stream", "messageId": mid}


async def test_cancel_stops_the_reply_in_flight(scripted: tuple[ScriptedServer, str]) -> None:
    server, url = scripted
    async with ChatClient(url, FakeTokens(["good-token"]), open_timeout=5) as client:
        mid = await client.send_message("long")
        await until(client, TextReceived)
        assert await client.cancel()
        finished = (await until(client, ReplyFinished))[-1]
        assert isinstance(finished, ReplyFinished)
        assert (finished.outcome, finished.text) == ("cancelled", "Once upon a time")
    assert {"action": "cancel", "messageId": mid} in server.received


async def test_a_reply_sent_from_another_tab_reaches_this_client(scripted: tuple[ScriptedServer, str]) -> None:
    _server, url = scripted
    async with (
        ChatClient(url, FakeTokens(["good-token"]), open_timeout=5) as watcher,
        ChatClient(url, FakeTokens(["good-token"]), open_timeout=5) as sender,
    ):
        await watcher.wait_connected(5)
        await sender.wait_connected(5)
        await asyncio.sleep(0.05)  # both registered on the server
        mid = await sender.send_message("stream")
        finished = (await until(watcher, ReplyFinished))[-1]
        assert isinstance(finished, ReplyFinished)
        assert (finished.message_id, finished.own, finished.text) == (mid, False, "Hello, it is noon.")
        assert watcher.session.in_flight is None


async def test_reconnects_after_a_refused_token_and_a_drop_and_resends_the_unaccepted_message(
    scripted: tuple[ScriptedServer, str],
) -> None:
    server, url = scripted
    tokens = FakeTokens(["expired-token", "good-token"])
    server.drop_next_send = True
    async with ChatClient(url, tokens, backoff=Backoff(initial=0.01, maximum=0.05), open_timeout=5) as client:
        # First attempt: 401 -> the client drops the token and signs in again.
        events = await until(client, Connected)
        assert any(isinstance(e, Disconnected) and "401" in e.reason for e in events)
        assert server.refused == 1
        assert tokens.index == 1

        mid = await client.send_message("stream")  # the server drops the connection before accepting it
        events = await until(client, ReplyFinished)
        assert any(isinstance(e, Disconnected) for e in events)
        assert any(isinstance(e, Connected) and e.attempt == 2 for e in events)
        assert isinstance(events[-1], ReplyFinished)
        assert events[-1].text == "Hello, it is noon."
    sends = [f for f in server.received if f["action"] == "sendMessage"]
    assert [f["messageId"] for f in sends] == [mid, mid]  # re-sent with the same id, so the server can dedupe


async def test_a_refused_sign_in_ends_the_client(scripted: tuple[ScriptedServer, str]) -> None:
    _, url = scripted
    tokens = FakeTokens([], fail_with=AuthenticationFailed("Sign-in refused: wrong password"))
    async with ChatClient(url, tokens, backoff=Backoff(initial=0.01), open_timeout=5) as client:
        fatal = (await until(client, Fatal))[-1]
        assert isinstance(fatal, Fatal)
        assert "wrong password" in fatal.reason
        with pytest.raises(AuthenticationFailed):
            await client.send_message("hello")
    assert tokens.calls == 1
