"""The whole system behind a Responses server this project did not write: the local stack with ``OPENAI_BASE_URL``
pointing at open-responses-server (installed from PyPI, see tests/thirdparty/bridge.py), which talks to the
deterministic Chat Completions server of tests/thirdparty/chat_backend.py. As a user would set it up: the stack
picks the ``openai-compatible`` profile by itself, and the packaged definition is used unchanged.

A reply reaches a real WebSocket client in order, a second turn carries the first, and both are counted: the
bridge reports no usage, so ``done`` and ``getUsage`` must show estimates, never 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import (
    e2e_settings,
    new_user,
    of_message,
    open_socket,
    receive_until,
    reply_text,
    request,
    running_stack,
    send_message,
    stack_info,
)
from tests.thirdparty.bridge import Bridge, require_bridge
from tests.thirdparty.chat_backend import API_KEY, ChatBackend

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backend() -> Iterator[ChatBackend]:
    with ChatBackend() as running:
        yield running


@pytest.fixture(scope="module")
def bridged_stack(backend: ChatBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    require_bridge()
    with Bridge(backend.root_url, API_KEY, tmp_path_factory.mktemp("open-responses-server")) as bridge:
        settings = e2e_settings(
            log_dir=tmp_path_factory.mktemp("lambda-logs"),
            openai_base_url=bridge.base_url,
            # What the worker sends the bridge as its key; the bridge uses its own towards the backend.
            openai_api_key="none",
            model_provider=None,
        )
        with running_stack(settings) as stack:
            yield stack


async def test_replies_through_the_bridge_reach_the_client_with_history_and_are_counted(
    bridged_stack: LocalStack, backend: ChatBackend
) -> None:
    info = stack_info(bridged_stack)
    assert info.model == "custom"
    user = new_user(bridged_stack, "bridge")
    async with open_socket(info, user.token) as ws:
        first = await send_message(ws, "Remember the lighthouse")
        frames = of_message(await receive_until(ws, "done", message_id=first["messageId"]), first["messageId"])
        assert [frame["type"] for frame in frames if frame["type"] not in ("delta", "done")] == [], frames
        [first_answer] = backend.state.answers
        assert reply_text(frames, first["messageId"]) == first_answer
        first_usage = frames[-1]["usage"]
        assert first_usage["inputTokens"] > 0
        assert first_usage["outputTokens"] > 0

        second = await send_message(ws, "And the keeper?", conversationId=first["conversationId"])
        frames = of_message(await receive_until(ws, "done", message_id=second["messageId"]), second["messageId"])
        second_answer = backend.state.answers[1]
        assert reply_text(frames, second["messageId"]) == second_answer
        # The backend counts the user messages it was sent: the first turn was among them.
        assert second_answer.startswith("Turn 2: you said 'And the keeper?'.")
        second_usage = frames[-1]["usage"]
        assert second_usage["outputTokens"] > 0
        assert second_usage["inputTokens"] > first_usage["inputTokens"]

        usage = await request(ws, {"action": "getUsage"}, "usage")

    assert usage["messages"] == 2
    assert usage["inputTokens"] == first_usage["inputTokens"] + second_usage["inputTokens"]
    assert usage["outputTokens"] == first_usage["outputTokens"] + second_usage["outputTokens"]
    assert backend.state.refusals == []
