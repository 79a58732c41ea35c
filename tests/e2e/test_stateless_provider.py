"""The chat against a stateless Responses server: the offline model's ``stateless`` profile (``POST /v1/responses``
only, 400 for ``background``/``conversation``/``previous_response_id``/``store: true``) with
``MODEL_PROVIDER=openai-compatible``, as ``OPENAI_BASE_URL=<vLLM, Ollama...> make dev`` runs it.

The conversation is ours: each request carries the earlier turns from DynamoDB, and getHistory reads them there.
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.local_stack.offline_model import Fault, Pace
from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import (
    model_pace,
    new_user,
    of_message,
    open_socket,
    receive_until,
    reply_text,
    request,
    responses_posted,
    send,
    send_message,
    stack_info,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


def _model_requests(stack: LocalStack) -> list[tuple[str, str, Any]]:
    assert stack.offline_model is not None
    return [(r.method, r.path, r.body) for r in stack.offline_model.state.requests]


async def test_chat_sends_the_earlier_turns_and_history_reads_them_from_the_table(stateless_stack: LocalStack) -> None:
    info = stack_info(stateless_stack)
    user = new_user(stateless_stack, "stateless")
    async with open_socket(info, user.token) as ws:
        first = await send_message(ws, "Remember the lighthouse")
        frames = await receive_until(ws, "done", message_id=first["messageId"])
        first_reply = reply_text(frames, first["messageId"])
        second = await send_message(ws, "And the keeper?")
        assert second["conversationId"] == first["conversationId"]
        frames = await receive_until(ws, "done", message_id=second["messageId"])
        # The offline model counts the user messages in the input it was sent: the first turn was in it.
        assert "That's your 2nd message in this conversation." in reply_text(frames, second["messageId"])
        answer = await request(ws, {"action": "getHistory", "conversationId": first["conversationId"]}, "history")

    [body] = responses_posted(stateless_stack, "And the keeper?")
    assert body["input"] == [
        {"type": "message", "role": "user", "content": "Remember the lighthouse"},
        {"type": "message", "role": "assistant", "content": [_output_text(first_reply)]},
        {"type": "message", "role": "user", "content": "And the keeper?"},
    ]
    for key in ("background", "store", "conversation", "previous_response_id"):
        assert key not in body
    # Nothing but POST /v1/responses was asked of the server (it would have answered 404).
    assert {(method, path) for method, path, _ in _model_requests(stateless_stack)} == {("POST", "/v1/responses")}
    messages = answer["messages"]
    assert [(m["role"], m["text"]) for m in messages][:2] == [
        ("user", "Remember the lighthouse"),
        ("assistant", first_reply),
    ]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["status"] == "done"
    assert messages[1]["model"] == "offline-demo"
    assert messages[1]["usage"]["outputTokens"] > 0
    assert messages[0]["messageId"] == first["messageId"]


async def test_cancel_then_continue(stateless_stack: LocalStack) -> None:
    info = stack_info(stateless_stack)
    user = new_user(stateless_stack, "stateless-cancel")
    with model_pace(stateless_stack, Pace(first_token_s=0.05, tokens_per_s=40)):
        async with open_socket(info, user.token) as ws:
            stopped = await send_message(ws, "Write a long essay about tides")
            message_id = stopped["messageId"]
            before = await receive_until(ws, "delta", message_id=message_id)
            await send(ws, {"action": "cancel", "messageId": message_id})
            after = await receive_until(ws, "cancelled", message_id=message_id, timeout=5)
    seen = reply_text(before + after, message_id)
    assert seen
    assert "done" not in [frame["type"] for frame in of_message(before + after, message_id)]
    assert await wait_for_status(stateless_stack, user.user_id, message_id) == "cancelled"

    async with open_socket(info, user.token) as ws:
        history = await request(ws, {"action": "getHistory", "conversationId": stopped["conversationId"]}, "history")
        # The stopped turn: the partial text the user saw, marked as stopped.
        assert [(m["role"], m.get("status")) for m in history["messages"]] == [
            ("user", None),
            ("assistant", "cancelled"),
        ]
        assert history["messages"][1]["text"] == seen

        again = await send_message(ws, "Continue, but shorter")
        frames = await receive_until(ws, "done", message_id=again["messageId"])
        assert "2nd message" in reply_text(frames, again["messageId"])
        history = await request(ws, {"action": "getHistory", "conversationId": stopped["conversationId"]}, "history")

    [body] = responses_posted(stateless_stack, "Continue, but shorter")
    assert body["input"][:2] == [
        {"type": "message", "role": "user", "content": "Write a long essay about tides"},
        {"type": "message", "role": "assistant", "content": [_output_text(seen)]},
    ]
    assert [m.get("status") for m in history["messages"]] == [None, "cancelled", None, "done"]


async def test_a_dropped_stream_is_asked_again_the_client_told_to_reset_and_one_turn_kept(
    stateless_stack: LocalStack,
) -> None:
    """No stored responses, so a drop cannot be resumed: the worker asks the model again and sends ``reset``."""
    assert stateless_stack.offline_model is not None
    info = stack_info(stateless_stack)
    user = new_user(stateless_stack, "stateless-drop")
    stateless_stack.offline_model.state.faults.push(Fault.cut_after_deltas(4))
    async with open_socket(info, user.token) as ws:
        sent = await send_message(ws, "Tell me about storms at sea")
        frames = await receive_until(ws, "done", message_id=sent["messageId"])
        answer = await request(ws, {"action": "getHistory", "conversationId": sent["conversationId"]}, "history")

    ours = of_message(frames, sent["messageId"])
    types = [frame["type"] for frame in ours]
    assert types.count("reset") == 1
    reset = ours[types.index("reset")]
    assert reset["offset"] == 0
    before = [frame for frame in ours[: types.index("reset")] if frame["type"] == "delta"]
    assert before, "the dropped attempt had shown text before the reset"
    after = [frame for frame in ours[types.index("reset") :] if frame["type"] == "delta"]
    assert after[0]["seq"] == 0
    assert after[0]["offset"] == 0
    text = reply_text(frames, sent["messageId"])
    first, second = responses_posted(stateless_stack, "Tell me about storms at sea")
    assert first == second  # the same request again, from the start of the turn
    # One whole answer, one turn.
    assert [(m["role"], m["text"]) for m in answer["messages"]] == [
        ("user", "Tell me about storms at sea"),
        ("assistant", text),
    ]
    assert answer["messages"][1]["status"] == "done"


def _output_text(text: str) -> dict[str, Any]:
    """An earlier reply as the model client sends it: an output_text part, as a response's output gives it."""
    return {"type": "output_text", "text": text, "annotations": []}
