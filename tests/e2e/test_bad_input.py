"""Every kind of bad input from the protocol, through the real gateway; the connection survives each of them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from assistant.wiring import AUTH_QUERY_PARAMETER, MAX_FRAME_BYTES
from scripts.local_stack.stack import LocalStack, StackInfo
from tests.e2e.conftest import (
    new_user,
    open_socket,
    receive_frame,
    receive_until,
    request,
    send_message,
    sign_in_tokens,
    stack_info,
)

pytestmark = pytest.mark.e2e

TOO_LONG = "x" * 16_001


async def _still_works(ws: ClientConnection) -> None:
    assert await request(ws, {"action": "ping"}, "pong", timeout=5) == {"type": "pong"}


async def _error_for(ws: ClientConnection, raw: str) -> dict[str, Any]:
    await ws.send(raw)
    frame = await receive_frame(ws)
    assert frame["type"] == "error", frame
    # Errors about a frame the client just sent carry no messageId, and never the server's internals.
    assert "messageId" not in frame
    assert frame["message"]
    assert "Traceback" not in frame["message"]
    return frame


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param("this is not json", "bad_request", id="invalid-json"),
        pytest.param('{"action": "sendMessage", "message": "hi"', "bad_request", id="truncated-json"),
        pytest.param(json.dumps([{"action": "ping"}]), "bad_request", id="json-array"),
        pytest.param(json.dumps("ping"), "bad_request", id="json-string"),
        pytest.param(json.dumps({"message": "hi"}), "unknown_action", id="no-action"),
        pytest.param(json.dumps({"action": "launchRockets"}), "unknown_action", id="unknown-action"),
        pytest.param(json.dumps({"action": 42}), "unknown_action", id="action-not-a-string"),
        pytest.param(json.dumps({"action": "$connect"}), "unknown_action", id="reserved-route-key"),
        pytest.param(json.dumps({"action": "sendMessage"}), "bad_request", id="message-missing"),
        pytest.param(json.dumps({"action": "sendMessage", "message": 42}), "bad_request", id="message-not-a-string"),
        pytest.param(json.dumps({"action": "sendMessage", "message": None}), "bad_request", id="message-null"),
        pytest.param(json.dumps({"action": "sendMessage", "message": " \n\t "}), "bad_request", id="message-blank"),
        pytest.param(json.dumps({"action": "sendMessage", "message": TOO_LONG}), "too_large", id="message-too-long"),
        pytest.param(
            json.dumps({"action": "sendMessage", "message": "hi", "messageId": "has spaces!"}),
            "bad_request",
            id="bad-message-id",
        ),
        pytest.param(
            json.dumps({"action": "sendMessage", "message": "hi", "messageId": "m" * 65}),
            "bad_request",
            id="message-id-too-long",
        ),
        pytest.param(
            json.dumps({"action": "sendMessage", "message": "hi", "conversationId": "../../etc"}),
            "bad_request",
            id="bad-conversation-id",
        ),
        pytest.param(json.dumps({"action": "cancel"}), "bad_request", id="cancel-without-message-id"),
        pytest.param(json.dumps({"action": "cancel", "messageId": "a/b"}), "bad_request", id="cancel-bad-id"),
        pytest.param(json.dumps({"action": "cancel", "messageId": "m_never_sent"}), "not_found", id="cancel-unknown"),
        pytest.param(json.dumps({"action": "getHistory"}), "bad_request", id="history-without-id"),
        pytest.param(
            json.dumps({"action": "getHistory", "conversationId": "c_does_not_exist"}),
            "not_found",
            id="history-unknown-conversation",
        ),
        pytest.param(
            json.dumps({"action": "sendMessage", "message": "hi", "conversationId": "c_does_not_exist"}),
            "not_found",
            id="send-to-unknown-conversation",
        ),
    ],
)
async def test_bad_input_gets_a_precise_error_and_the_socket_keeps_working(
    local_stack: LocalStack, raw: str, code: str
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "bad")
    async with open_socket(info, user.token) as ws:
        frame = await _error_for(ws, raw)
        assert frame["code"] == code, frame
        await _still_works(ws)
        # Nothing was queued: the user has no conversation to show for it.
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert listed["items"] == []


#: Ids outside ``ID_PATTERN``; ``#`` first, as it is the separator of the table's keys (``MSG#<id>``).
BAD_IDS = ["#", "a#b", "USER#someone-else", " ", "a b", "", "x" * 65, "é", "日本", "/", "a/b", "a\n"]


@pytest.mark.parametrize(
    ("action", "field", "valid"),
    [
        pytest.param("sendMessage", "messageId", {"message": "hi"}, id="sendMessage-messageId"),
        pytest.param("sendMessage", "conversationId", {"message": "hi"}, id="sendMessage-conversationId"),
        pytest.param("cancel", "messageId", {}, id="cancel-messageId"),
        pytest.param("getHistory", "conversationId", {}, id="getHistory-conversationId"),
    ],
)
async def test_an_id_outside_the_pattern_is_refused_by_every_action_and_the_socket_keeps_working(
    local_stack: LocalStack, action: str, field: str, valid: dict[str, Any]
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "badid")
    async with open_socket(info, user.token) as ws:
        for bad in BAD_IDS:
            frame = await _error_for(ws, json.dumps({"action": action, **valid, field: bad}))
            assert frame["code"] == "bad_request", (bad, frame)
            assert f"`{field}`" in frame["message"], (bad, frame)
            await _still_works(ws)
        # Nothing was recorded or queued for any of them.
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert listed["items"] == []


async def test_a_message_of_exactly_the_limit_is_accepted(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "limit")
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "y" * 16_000)
        frames = await receive_until(ws, "done", message_id=accepted["messageId"])
        assert frames[-1]["type"] == "done"


async def test_someone_elses_conversation_and_message_are_not_found_without_a_hint(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    owner, intruder = new_user(local_stack, "owner"), new_user(local_stack, "intruder")
    async with open_socket(info, owner.token) as ws:
        accepted = await send_message(ws, "My private conversation")
        await receive_until(ws, "done", message_id=accepted["messageId"])
    conversation_id, message_id = accepted["conversationId"], accepted["messageId"]

    async with open_socket(info, intruder.token) as ws:
        answers = {}
        for label, frame in {
            "foreign-history": {"action": "getHistory", "conversationId": conversation_id},
            "unknown-history": {"action": "getHistory", "conversationId": "c_000000000000000000000000"},
            "foreign-send": {"action": "sendMessage", "message": "let me in", "conversationId": conversation_id},
            "unknown-send": {"action": "sendMessage", "message": "let me in", "conversationId": "c_0000000000000000"},
            "foreign-cancel": {"action": "cancel", "messageId": message_id},
            "unknown-cancel": {"action": "cancel", "messageId": "m_000000000000000000000000"},
        }.items():
            answers[label] = await _error_for(ws, json.dumps(frame))
            await _still_works(ws)
        # A foreign id and one that never existed are indistinguishable: same code, same words.
        for kind in ("history", "send", "cancel"):
            assert answers[f"foreign-{kind}"] == answers[f"unknown-{kind}"]
            assert answers[f"foreign-{kind}"]["code"] == "not_found"
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert listed["items"] == []
    # The owner's conversation is untouched by the attempts.
    async with open_socket(info, owner.token) as ws:
        answer = await request(ws, {"action": "getHistory", "conversationId": conversation_id}, "history")
        assert [m["role"] for m in answer["messages"]] == ["user", "assistant"]


def _url(info: StackInfo, token: str | None) -> str:
    return info.websocket_url if token is None else f"{info.websocket_url}?{AUTH_QUERY_PARAMETER}={token}"


async def _refused_with(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, proxy=None, open_timeout=10):
            pass
    return refused.value.response.status_code


async def test_a_connection_without_a_token_is_refused_with_401(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    assert await _refused_with(_url(info, None)) == 401
    assert await _refused_with(_url(info, "")) == 401


async def test_a_garbage_token_is_refused_with_403(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    assert await _refused_with(_url(info, "not-a-jwt")) == 403
    assert await _refused_with(_url(info, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")) == 403


async def test_an_id_token_or_a_tampered_access_token_is_refused(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "idtoken")
    tokens = sign_in_tokens(info, user.username, user.password)
    # Signed by the same pool, but meant for the client, not for APIs (token_use = id).
    assert await _refused_with(_url(info, tokens["IdToken"])) == 403
    header, payload, signature = tokens["AccessToken"].split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert await _refused_with(_url(info, f"{header}.{payload}.{flipped}")) == 403
    # The genuine access token of the same sign-in is accepted.
    async with open_socket(info, tokens["AccessToken"]) as ws:
        await _still_works(ws)


async def test_a_frame_over_32_kb_closes_the_connection_with_1009(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "bigframe")
    async with open_socket(info, user.token) as ws:
        # A frame of exactly 32 KB is still read (and refused politely: its message is too long).
        envelope = json.dumps({"action": "sendMessage", "message": ""})
        at_limit = json.dumps({"action": "sendMessage", "message": "z" * (MAX_FRAME_BYTES - len(envelope))})
        assert len(at_limit.encode()) == MAX_FRAME_BYTES
        assert (await _error_for(ws, at_limit))["code"] == "too_large"
        await _still_works(ws)

        over = json.dumps({"action": "sendMessage", "message": "z" * (MAX_FRAME_BYTES - len(envelope) + 1)})
        await ws.send(over)
        with pytest.raises(ConnectionClosedError) as closed:
            await receive_frame(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
