"""One user floods every action through the local gateway (real WebSockets, the stage's API Gateway throttles
applied as AWS applies them); their own buckets refuse them with `rate_limited` and keep their connection open, and
another user's message sent in the middle of the flood is accepted and streamed to `done`.

The stack runs with the `prod` stage's pools (assistant.stage_throttles). On `dev` the stage's pool (burst 20) is
smaller than one user's `ping` or `cancel` burst (30), so there API Gateway answers a flooder's cheap frames with
"Too Many Requests" before their own buckets do; `sendMessage` and `$connect` keep pools of their own either way
(tests/unit/test_gateway_throttle.py). The flood is bounded: each action's burst plus five frames, at most 40."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from assistant.stage_throttles import PROD_THROTTLES
from assistant.stores.rate_limits import RateLimit
from assistant.wiring import STAGE_DEFAULTS
from scripts.local_stack.gateway.throttle import TOO_MANY_REQUESTS
from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import (
    e2e_settings,
    new_user,
    open_socket,
    receive_frame,
    receive_until,
    request,
    running_stack,
    send,
    send_message,
    stack_info,
)

pytestmark = pytest.mark.e2e

#: Frames beyond each action's burst: enough to be refused even if the bucket refills a token or two meanwhile.
EXCESS = 5


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = e2e_settings(log_dir=tmp_path_factory.mktemp("lambda-logs"), throttles=PROD_THROTTLES)
    with running_stack(settings) as stack:
        yield stack


def _burst(limit: str) -> int:
    return RateLimit.parse(limit).burst


async def _flood(ws: ClientConnection, frame: dict[str, Any], answer_type: str, count: int) -> list[dict[str, Any]]:
    """Send ``count`` copies of ``frame`` at once and return the ``count`` answers: ``answer_type``, an `error`
    without a ``messageId`` (a refused command), or API Gateway's throttled frame (which must not come)."""
    for _ in range(count):
        await send(ws, frame)
    answers: list[dict[str, Any]] = []
    while len(answers) < count:
        received = await receive_frame(ws, timeout=10)
        throttled = received.get("message") == TOO_MANY_REQUESTS
        refused = received.get("type") == "error" and (
            "messageId" not in received or received.get("code") == "rate_limited"
        )
        if throttled or refused or received.get("type") == answer_type:
            answers.append(received)
    return answers


async def _flood_cancel(ws: ClientConnection, message_id: str, count: int) -> list[dict[str, Any]]:
    """Cancelling a finished reply is a no-op that sends nothing, so only refusals come back: wait for those."""
    for _ in range(count):
        await send(ws, {"action": "cancel", "messageId": message_id})
    refused: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            received = await receive_frame(ws, timeout=max(0.05, min(1.0, deadline - time.monotonic())))
        except TimeoutError:
            if refused:
                break  # a second of quiet after the refusals: the rest were no-ops
            continue
        if received.get("type") == "error" or received.get("message") == TOO_MANY_REQUESTS:
            refused.append(received)
    return refused


def _assert_refused_by_own_bucket(
    action: str, answers: list[dict[str, Any]], limit: str, answer_type: str, elapsed_s: float
) -> None:
    assert not [a for a in answers if a.get("message") == TOO_MANY_REQUESTS], f"{action}: the stage's pool ran dry"
    refused = [a for a in answers if a.get("type") == "error"]
    served = [a for a in answers if a.get("type") == answer_type]
    assert refused, f"{action}: {len(answers)} frames, none refused"
    assert {a["code"] for a in refused} == {"rate_limited"}, (action, refused)
    assert all(isinstance(a["retryAfterMs"], int) and a["retryAfterMs"] > 0 for a in refused), (action, refused)
    # At most the burst and what the bucket refilled while the flood ran.
    bucket = RateLimit.parse(limit)
    assert len(served) <= bucket.burst + bucket.per_minute / 60 * elapsed_s + 1, (action, len(served), elapsed_s)


async def test_one_users_flood_of_every_action_is_refused_by_their_buckets_and_another_user_still_chats(
    local_stack: LocalStack,
) -> None:
    info = stack_info(local_stack)
    flooder, bystander = new_user(local_stack, "flooder"), new_user(local_stack, "bystander")
    flooding_send_message = asyncio.Event()
    stage_rate = PROD_THROTTLES.stage.rate_limit

    async def bystander_chats() -> list[dict[str, Any]]:
        async with open_socket(info, bystander.token) as ws:
            await asyncio.wait_for(flooding_send_message.wait(), timeout=30)
            accepted = await send_message(ws, "still here?", messageId="bystander-1")
            frames = await receive_until(ws, "done", message_id=accepted["messageId"], timeout=30)
            return [accepted, *frames]

    async def flood() -> None:
        async with open_socket(info, flooder.token) as ws:
            first = await send_message(ws, "hello", messageId="flood-1")
            await receive_until(ws, "done", message_id="flood-1", timeout=30)
            conversation_id = first["conversationId"]
            for action, frame, answer_type, limit in (
                ("ping", {"action": "ping"}, "pong", STAGE_DEFAULTS.rate_limit_ping),
                ("getUsage", {"action": "getUsage"}, "usage", STAGE_DEFAULTS.rate_limit_get_usage),
                (
                    "listConversations",
                    {"action": "listConversations"},
                    "conversations",
                    STAGE_DEFAULTS.rate_limit_list_conversations,
                ),
                (
                    "getHistory",
                    {"action": "getHistory", "conversationId": conversation_id},
                    "history",
                    STAGE_DEFAULTS.rate_limit_get_history,
                ),
                (
                    "newConversation",
                    {"action": "newConversation"},
                    "conversation",
                    STAGE_DEFAULTS.rate_limit_new_conversation,
                ),
            ):
                burst = _burst(limit)
                phase = time.monotonic()
                answers = await _flood(ws, frame, answer_type, burst + EXCESS)
                _assert_refused_by_own_bucket(action, answers, limit, answer_type, time.monotonic() - phase)
                # Let the stage's pool (shared by every user) refill what this phase spent, as a slower flooder would.
                await asyncio.sleep((burst + EXCESS) / stage_rate)

            # A repeated messageId is charged against sendMessage's bucket: the original `accepted` while within it.
            flooding_send_message.set()
            limit = STAGE_DEFAULTS.rate_limit_send_message
            repeat = {"action": "sendMessage", "message": "hello", "messageId": "flood-1"}
            phase = time.monotonic()
            answers = await _flood(ws, repeat, "accepted", _burst(limit) + EXCESS)
            _assert_refused_by_own_bucket("sendMessage", answers, limit, "accepted", time.monotonic() - phase)
            assert {a["messageId"] for a in answers if a["type"] == "accepted"} == {"flood-1"}

            limit = STAGE_DEFAULTS.rate_limit_cancel
            phase = time.monotonic()
            refused = await _flood_cancel(ws, "flood-1", _burst(limit) + EXCESS)
            _assert_refused_by_own_bucket("cancel", refused, limit, "cancelled", time.monotonic() - phase)
            assert len(refused) >= EXCESS - 2

            # The flooder's connection survived all of it.
            assert ws.state is State.OPEN
            await asyncio.sleep(1.0)  # a ping token back (2 a second)
            assert await request(ws, {"action": "ping"}, "pong", timeout=5) == {"type": "pong"}

    started = time.monotonic()
    _, frames = await asyncio.gather(flood(), bystander_chats())
    accepted, *reply = frames
    assert accepted["type"] == "accepted"
    assert reply[-1]["type"] == "done"
    assert reply[-1]["messageId"] == accepted["messageId"]
    assert not [f for f in reply if f.get("type") == "error" or f.get("message") == TOO_MANY_REQUESTS]
    assert time.monotonic() - started < 25
