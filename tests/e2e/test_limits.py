"""Cost safety through the real gateway, by hostile clients on real WebSockets: rate limits, the connection cap,
usage, and valid-but-hostile JSON. The stack applies the `dev` stage's defaults (burst 10 for sendMessage, 10
connections per user)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from assistant.wiring import AUTH_QUERY_PARAMETER, STAGE_DEFAULTS
from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import new_user, open_socket, receive_frame, request, stack_info

pytestmark = pytest.mark.e2e


async def _answers(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The route responses of ``count`` frames (reply frames of accepted messages are skipped)."""
    answers: list[dict[str, Any]] = []
    while len(answers) < count:
        frame = await receive_frame(ws, timeout=15)
        if frame["type"] in ("accepted", "error") and (frame["type"] == "accepted" or "messageId" not in frame):
            answers.append(frame)
    return answers


async def test_a_burst_of_send_message_beyond_the_limit_is_refused_and_the_socket_keeps_working(
    local_stack: LocalStack,
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "burst")
    burst = int(STAGE_DEFAULTS.rate_limit_send_message.split("/")[0])
    async with open_socket(info, user.token) as ws:
        for i in range(burst + 5):
            await ws.send(json.dumps({"action": "sendMessage", "message": f"spam {i}", "messageId": f"spam-{i}"}))
        answers = await _answers(ws, burst + 5)

        accepted = [a for a in answers if a["type"] == "accepted"]
        refused = [a for a in answers if a["type"] == "error"]
        # The bucket lets 10 through at most, and at most 5 may wait in the queue at once (the first is claimed
        # within moments, so one or two more fit): either way the rest is refused with `rate_limited`.
        assert STAGE_DEFAULTS.max_waiting_messages <= len(accepted) <= burst
        assert len(refused) == burst + 5 - len(accepted)
        assert {a["code"] for a in refused} == {"rate_limited"}
        assert all(isinstance(a["retryAfterMs"], int) and a["retryAfterMs"] > 0 for a in refused)
        assert await request(ws, {"action": "ping"}, "pong", timeout=5) == {"type": "pong"}
        usage = await request(ws, {"action": "getUsage"}, "usage")
        assert usage["messageQuota"] == STAGE_DEFAULTS.daily_message_quota
        assert usage["outputTokenQuota"] == STAGE_DEFAULTS.daily_output_token_quota
        # Only the accepted ones are ever answered: wait for every one (route responses may arrive in another
        # order than the queue answers them), then count what was claimed.
        pending = {a["messageId"] for a in accepted}
        while pending:
            frame = await receive_frame(ws, timeout=60)
            if frame["type"] == "done":
                pending.discard(frame["messageId"])
        usage = await request(ws, {"action": "getUsage"}, "usage")
        assert usage["messages"] == len(accepted)
        assert usage["outputTokens"] > 0
        assert usage["inputTokens"] > 0


async def test_connections_beyond_the_cap_are_refused_and_the_others_keep_working(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "tabs")
    url = f"{info.websocket_url}?{AUTH_QUERY_PARAMETER}={user.token}"
    cap = STAGE_DEFAULTS.max_connections_per_user
    sockets = [await connect(url, proxy=None, open_timeout=10) for _ in range(cap)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, proxy=None, open_timeout=10):
                pass
        assert refused.value.response.status_code == 429
        assert await request(sockets[0], {"action": "ping"}, "pong", timeout=5) == {"type": "pong"}
        await sockets[-1].close()
        await asyncio.sleep(0.5)  # $disconnect removes the record
        async with connect(url, proxy=None, open_timeout=10) as again:
            assert await request(again, {"action": "ping"}, "pong", timeout=5) == {"type": "pong"}
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_burst_of_forty_parallel_connects_leaves_at_most_ten_open(local_stack: LocalStack) -> None:
    """Each `$connect` runs in a container of its own, all at once: only the cap's worth get in (the count is one
    conditional write, not a count then an insert), and the rest are refused with 429 (by the cap, or by the
    stage's `$connect` throttle, which the gateway applies as API Gateway does)."""
    info = stack_info(local_stack)
    user = new_user(local_stack, "flood")
    url = f"{info.websocket_url}?{AUTH_QUERY_PARAMETER}={user.token}"
    cap = STAGE_DEFAULTS.max_connections_per_user
    attempts = await asyncio.gather(
        *(connect(url, proxy=None, open_timeout=30) for _ in range(40)), return_exceptions=True
    )
    opened = [ws for ws in attempts if isinstance(ws, ClientConnection)]
    try:
        refused = [a for a in attempts if not isinstance(a, ClientConnection)]
        assert all(isinstance(a, InvalidStatus) and a.response.status_code == 429 for a in refused), refused
        assert 1 <= len(opened) <= cap
        for ws in opened:
            assert await request(ws, {"action": "ping"}, "pong", timeout=10) == {"type": "pong"}
    finally:
        for ws in opened:
            await ws.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(
            '{"action":"sendMessage","message":"x","a":' + "[" * 10_000 + "]" * 10_000 + "}",
            "bad_request",
            id="deep-nesting",
        ),
        pytest.param('{"action":"sendMessage","message":"x","n":' + "9" * 6_000 + "}", "bad_request", id="huge-number"),
        pytest.param('{"action":"sendMessage","message":"a\\ud800b"}', "bad_request", id="lone-surrogate"),
        pytest.param('{"action":"sendMessage","message":"a\\uffffb"}', "bad_request", id="noncharacter"),
        pytest.param('{"action":"sendMessage","message":"a\\u0000b"}', "bad_request", id="nul"),
        pytest.param('{"action":"ping","n":NaN}', "bad_request", id="nan"),
    ],
)
async def test_hostile_but_valid_json_is_a_bad_request_and_nothing_is_recorded(
    local_stack: LocalStack, raw: str, code: str
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "hostile")
    async with open_socket(info, user.token) as ws:
        await ws.send(raw)
        frame = await receive_frame(ws)
        assert (frame["type"], frame["code"]) == ("error", code), frame
        assert len(frame["message"]) < 300
        assert await request(ws, {"action": "ping"}, "pong", timeout=5) == {"type": "pong"}
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert listed["items"] == []
        usage = await request(ws, {"action": "getUsage"}, "usage")
        assert usage["messages"] == 0
