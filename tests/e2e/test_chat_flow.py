"""A user's chat through the whole local stack: a real WebSocket client, the gateway, the queue, the worker, the model.

Every test signs in its own user, so tests sharing the module's stack never see each other's frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_stack.offline_model import OFFLINE_MODEL_NAME, Pace
from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import (
    e2e_settings,
    function_log,
    history,
    message_store,
    model_pace,
    new_user,
    of_message,
    open_socket,
    receive_until,
    reply_text,
    request,
    responses_posted,
    running_stack,
    send,
    send_message,
    sign_in,
    stack_info,
    wait_for_history,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["openai", "stateless"])
def local_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The chat against both dialects of the offline model, each with the provider profile that matches it
    (``stateless`` as ``OPENAI_BASE_URL=<vLLM, Ollama...> make dev`` runs it)."""
    settings = e2e_settings(
        log_dir=tmp_path_factory.mktemp("lambda-logs"), offline_model_profile=request.param, model_provider=None
    )
    with running_stack(settings) as stack:
        yield stack


# First in the module, before the module's own stack starts: two stacks must never run in one process at once.
async def test_a_stopped_stack_can_be_started_again_in_the_same_process(tmp_path: Path) -> None:
    if os.environ.get("TABLE_NAME"):
        pytest.skip("another local stack is running in this process")
    settings = e2e_settings(log_dir=tmp_path)
    for _ in range(2):
        with LocalStack(settings) as info:
            async with open_socket(info, sign_in(info)) as ws:
                assert await request(ws, {"action": "ping"}, "pong") == {"type": "pong"}


async def test_a_reply_streams_in_order_and_ends_with_done(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "stream")
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "Hello there, how are you?")
        message_id = accepted["messageId"]
        assert accepted["conversationId"].startswith("c_")
        frames = await receive_until(ws, "done", message_id=message_id)

    deltas = [frame for frame in frames if frame["type"] == "delta"]
    assert len(deltas) >= 2, "the first text goes out at once, the rest in later frames"
    assert [frame["seq"] for frame in deltas] == list(range(len(deltas)))
    assert all(frame.get("messageId") == message_id for frame in frames), frames
    done = frames[-1]
    assert done["conversationId"] == accepted["conversationId"]
    assert done["model"] == OFFLINE_MODEL_NAME == "offline-demo"
    assert done["usage"]["inputTokens"] > 0
    assert done["usage"]["outputTokens"] > 0
    text = reply_text(frames, message_id)
    assert text.startswith("Hello! I'm the offline demo model")
    assert len(responses_posted(local_stack, "Hello there, how are you?")) == 1


def emf_metrics(log: str) -> dict[str, set[str]]:
    """Metric names by namespace, from the EMF lines (CloudWatch's embedded metric format) in a function's log."""
    found: dict[str, set[str]] = {}
    for line in log.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            found.setdefault(directive["Namespace"], set()).update(m["Name"] for m in directive["Metrics"])
    return found


async def test_each_function_flushes_its_metrics_into_its_own_log(local_stack: LocalStack) -> None:
    """As deployed: metrics on, each function's EMF in its own log stream (a function without a namespace fails)."""
    info = stack_info(local_stack)
    user = new_user(local_stack, "metrics")
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "Count this one")
        await receive_until(ws, "done", message_id=accepted["messageId"])

    namespace = "ServerlessGptAssistant"
    assert "AuthAllowed" in emf_metrics(function_log(local_stack, "authorizer")).get(namespace, set())
    assert "RouteRequests" in emf_metrics(function_log(local_stack, "send_message")).get(namespace, set())
    worker = emf_metrics(function_log(local_stack, "worker")).get(namespace, set())
    assert {"RecordsReceived", "RepliesCompleted"} <= worker, worker
    assert "AuthAllowed" not in worker, "each function writes to its own log"


async def test_every_tab_gets_the_whole_reply_and_other_users_get_nothing(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    alice, bob = new_user(local_stack, "alice"), new_user(local_stack, "bob")
    async with (
        open_socket(info, alice.token) as tab1,
        open_socket(info, alice.token) as tab2,
        open_socket(info, bob.token) as bob_ws,
    ):
        accepted = await send_message(tab1, "Tell me something about two tabs")
        message_id = accepted["messageId"]
        first = await receive_until(tab1, "done", message_id=message_id)
        second = await receive_until(tab2, "done", message_id=message_id)
        # Bob's socket works, and nothing of Alice's reply reached it before his own answer.
        await send(bob_ws, {"action": "ping"})
        assert await receive_until(bob_ws, "pong") == [{"type": "pong"}]

    assert first == second, "both tabs see the same frames"
    assert first[-1]["type"] == "done"
    assert reply_text(second, message_id).startswith('You said: "Tell me something about two tabs"')


async def test_one_users_messages_are_answered_one_at_a_time_in_order(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "order")
    texts = ["first in line", "second in line", "third in line"]
    # A pause before each first token keeps the later messages waiting in the queue while the first is answered.
    with model_pace(local_stack, Pace(first_token_s=0.3, tokens_per_s=400)):
        async with open_socket(info, user.token) as ws:
            frames: list[dict] = []
            accepted_ids: list[str] = []
            for text in texts:
                await send(ws, {"action": "sendMessage", "message": text})
                # Replies to earlier messages may already be streaming; keep their frames.
                frames += await receive_until(ws, "accepted")
                accepted_ids.append(frames[-1]["messageId"])
            while sum(1 for frame in frames if frame["type"] == "done") < len(texts):
                frames += await receive_until(ws, "done")

    done_ids = [frame["messageId"] for frame in frames if frame["type"] == "done"]
    assert done_ids == accepted_ids
    # No interleaving: the reply frames of one message come as one block, and only after the previous is done.
    reply_frames = [frame for frame in frames if frame["type"] in ("delta", "done")]
    blocks = [frame["messageId"] for frame in reply_frames]
    collapsed = [mid for i, mid in enumerate(blocks) if i == 0 or blocks[i - 1] != mid]
    assert collapsed == accepted_ids
    for message_id, text in zip(accepted_ids, texts, strict=True):
        assert reply_text(frames, message_id).startswith(f'You said: "{text}"')
        assert len(responses_posted(local_stack, text)) == 1


async def test_cancel_mid_reply_stops_it_with_cancelled_and_no_done(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "cancel")
    # Slow enough that the essay would take ~10 s: cancelling after its first frame is certainly mid-reply.
    with model_pace(local_stack, Pace(first_token_s=0.05, tokens_per_s=40)):
        async with open_socket(info, user.token) as ws:
            accepted = await send_message(ws, "Write a long essay about tides")
            message_id = accepted["messageId"]
            before = await receive_until(ws, "delta", message_id=message_id)
            await send(ws, {"action": "cancel", "messageId": message_id})
            after = await receive_until(ws, "cancelled", message_id=message_id, timeout=5)
            # Nothing of the reply follows the cancellation.
            await send(ws, {"action": "ping"})
            tail = await receive_until(ws, "pong")

    frames = before + after + tail
    types = [frame["type"] for frame in of_message(frames, message_id)]
    assert "done" not in types
    assert types[-1] == "cancelled"
    assert [frame["type"] for frame in tail] == ["pong"]
    assert await wait_for_status(local_stack, user.user_id, message_id) == "cancelled"
    assert len(responses_posted(local_stack, "Write a long essay about tides")) == 1
    # The model stopped too: a background response runs on after its stream closes unless it is cancelled.
    record = message_store(local_stack).get(user.user_id, message_id)
    assert record is not None
    assert record.checkpoint.response_id is not None
    assert local_stack.offline_model is not None
    if local_stack.settings.offline_model_profile == "openai":  # a stateless server keeps no response to look at
        run = local_stack.offline_model.state.responses[record.checkpoint.response_id]
        assert run.response["status"] == "cancelled"


async def test_reconnect_keeps_the_conversation_and_new_conversation_starts_another(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "reconnect")
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "Remember the lighthouse")
        frames = await receive_until(ws, "done", message_id=accepted["messageId"])
    first_conversation = accepted["conversationId"]
    first_reply = reply_text(frames, accepted["messageId"])

    # A new sign-in (a new access token), a new connection: the conversation is still there.
    token = sign_in(info, user.username, user.password)
    async with open_socket(info, token) as ws:
        assert await history(ws, first_conversation) == [
            ("user", "Remember the lighthouse"),
            ("assistant", first_reply),
        ]
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert [(item["conversationId"], item["title"]) for item in listed["items"]] == [
            (first_conversation, "Remember the lighthouse")
        ]
        # Without a conversationId a message continues the current conversation (the model sees the context).
        again = await send_message(ws, "And the keeper?")
        assert again["conversationId"] == first_conversation
        frames = await receive_until(ws, "done", message_id=again["messageId"])
        assert "That's your 2nd message in this conversation." in reply_text(frames, again["messageId"])

        created = await request(ws, {"action": "newConversation"}, "conversation")
        second_conversation = created["conversationId"]
        assert second_conversation != first_conversation
        fresh = await send_message(ws, "A fresh start")
        assert fresh["conversationId"] == second_conversation
        frames = await receive_until(ws, "done", message_id=fresh["messageId"])
        assert "2nd message" not in reply_text(frames, fresh["messageId"])

        assert [role for role, _ in await history(ws, second_conversation)] == ["user", "assistant"]
        assert len(await history(ws, first_conversation)) == 4
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert [item["conversationId"] for item in listed["items"]] == [second_conversation, first_conversation]
        # An explicit conversationId goes back to the older one.
        back = await send_message(ws, "Back to the lighthouse", conversationId=first_conversation)
        assert back["conversationId"] == first_conversation
        await receive_until(ws, "done", message_id=back["messageId"])
        assert len(await history(ws, first_conversation)) == 6


async def test_a_tab_that_reconnects_gets_the_reply_to_its_next_message(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "refresh")
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "Before the page reload")
        await receive_until(ws, "done", message_id=accepted["messageId"])
    # The page reloads (a new connection) and the user sends at once.
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "After the page reload")
        try:
            frames = await receive_until(ws, "done", message_id=accepted["messageId"], timeout=4)
        except TimeoutError:
            status = await wait_for_status(local_stack, user.user_id, accepted["messageId"])
            pytest.fail(f"no `done` reached the new connection (the message is {status})")
    assert reply_text(frames, accepted["messageId"]).startswith('You said: "After the page reload"')


async def test_a_client_that_leaves_mid_reply_finds_the_whole_reply_in_history(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "leaver")
    text = "Is anyone still listening?"
    with model_pace(local_stack, Pace(first_token_s=0.05, tokens_per_s=60)):
        async with open_socket(info, user.token) as ws:
            accepted = await send_message(ws, text)
            message_id = accepted["messageId"]
            seen = await receive_until(ws, "delta", message_id=message_id)
        # The socket is closed: the rest of the reply has nowhere to go, and that must not fail the worker.
        assert await wait_for_status(local_stack, user.user_id, message_id) == "done"

    async with open_socket(info, sign_in(info, user.username, user.password)) as ws:
        messages = await wait_for_history(ws, accepted["conversationId"], turns=2)
    assert messages[0] == ("user", text)
    role, full = messages[1]
    assert role == "assistant"
    partial = reply_text(seen, message_id)
    assert full.startswith(partial)
    assert len(full) > len(partial)
    assert full.startswith(f'Good question: "{text}"')
    assert len(responses_posted(local_stack, text)) == 1, "answered once: no redelivery asked the model again"


async def test_a_tool_call_shows_started_and_done_frames(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "tools")
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, "What time is it in Tokyo?")
        message_id = accepted["messageId"]
        frames = await receive_until(ws, "done", message_id=message_id)

    tool_frames = [frame for frame in frames if frame["type"] == "tool"]
    assert tool_frames == [
        {"type": "tool", "messageId": message_id, "name": "current_time", "status": "started"},
        {"type": "tool", "messageId": message_id, "name": "current_time", "status": "done"},
    ]
    types = [frame["type"] for frame in frames]
    assert types.index("tool") < types.index("delta"), "the tool runs before the answer that uses it"
    text = reply_text(frames, message_id)
    assert text.startswith("According to the current_time tool, it is ")
    assert text.endswith(" in Asia/Tokyo.")
    # The tool's real output made it into the reply: an ISO-like timestamp with Tokyo's offset.
    assert "+09:00" in text, text
    posted = responses_posted(local_stack, "What time is it in Tokyo?")
    if local_stack.settings.offline_model_profile == "openai":
        # The user text went to the model once; the second round continued the stored response with the output.
        assert len(posted) == 1
    else:
        # A stateless server keeps nothing: the second round re-sends the input with the call and its output.
        first, second = posted
        assert [item["type"] for item in second["input"][len(first["input"]) :]] == [
            "function_call",
            "function_call_output",
        ]
    assert frames[-1]["usage"]["outputTokens"] > 0
