"""Managing conversations through the whole local stack with real WebSocket clients: rename and delete reach every
tab, a deleted conversation is unreadable at once and gone from the table soon after (the worker's erasure),
deleteAllData and the admin script, another user's ids refused, titles of stopped first replies, no empty
conversations listed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from scripts import delete_user_data
from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS
from scripts.local_stack.offline_model import Pace
from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import (
    model_pace,
    new_user,
    open_socket,
    receive_until,
    request,
    send,
    send_message,
    stack_info,
)

pytestmark = pytest.mark.e2e

#: What the issue promises: a deleted conversation's items are gone from the table within 5 minutes. The local
#: stack's worker erases them within seconds; the test waits far less than the promise.
ERASED_WITHIN_S = 30


def _table(stack: LocalStack) -> Any:
    assert stack.resources is not None
    dynamodb = boto3.resource(
        "dynamodb", endpoint_url=stack.resources.endpoint, region_name=stack_info(stack).region, **FAKE_CREDENTIALS
    )
    return dynamodb.Table(stack.resources.table_name)


def _items(stack: LocalStack, user_id: str, prefix: str) -> list[dict[str, Any]]:
    return list(
        _table(stack).query(
            KeyConditionExpression=Key("pk").eq(f"USER#{user_id}") & Key("sk").begins_with(prefix),
            ConsistentRead=True,
        )["Items"]
    )


async def _wait_until_erased(stack: LocalStack, user_id: str, conversation_id: str | None = None) -> float:
    """Seconds until no turn or message record of the conversation (or of any conversation) is left."""
    started = time.monotonic()
    while time.monotonic() - started < ERASED_WITHIN_S:
        left = [
            item
            for prefix in ("TURN#", "MSG#")
            for item in await asyncio.to_thread(_items, stack, user_id, prefix)
            if conversation_id is None or item.get("conversationId") == conversation_id
        ]
        if not left:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{len(left)} items of the deleted conversation still in the table after {ERASED_WITHIN_S} s")


async def _reply(ws: Any, text: str, **fields: Any) -> dict[str, Any]:
    accepted = await send_message(ws, text, **fields)
    await receive_until(ws, "done", message_id=accepted["messageId"])
    return accepted


async def test_rename_and_delete_reach_every_tab_and_the_deleted_conversation_is_erased(
    local_stack: LocalStack,
) -> None:
    info, user = stack_info(local_stack), new_user(local_stack, "manage")
    async with open_socket(info, user.token) as first, open_socket(info, user.token) as second:
        kept = await _reply(first, "Keep this conversation")
        await receive_until(second, "done", message_id=kept["messageId"])
        doomed = (await request(first, {"action": "newConversation"}, "conversation"))["conversationId"]
        for text in ("one", "two", "three"):
            accepted = await _reply(first, text, conversationId=doomed)
            await receive_until(second, "done", message_id=accepted["messageId"])

        rename = {"action": "renameConversation", "conversationId": doomed, "title": "Renamed in tab one"}
        renamed = await request(first, rename, "conversationUpdated")
        seen = (await receive_until(second, "conversationUpdated"))[-1]
        assert (
            renamed == seen == {"type": "conversationUpdated", "conversationId": doomed, "title": "Renamed in tab one"}
        )
        listed = await request(second, {"action": "listConversations"}, "conversations")
        assert {item["title"] for item in listed["items"]} == {"Renamed in tab one", "Keep this conversation"}

        deleted = await request(
            second, {"action": "deleteConversation", "conversationId": doomed}, "conversationDeleted"
        )
        assert deleted == (await receive_until(first, "conversationDeleted"))[-1]
        # Unreadable at once, for every action, from either tab.
        for ws, frame in (
            (first, {"action": "getHistory", "conversationId": doomed}),
            (second, {"action": "renameConversation", "conversationId": doomed, "title": "again"}),
            (first, {"action": "sendMessage", "conversationId": doomed, "message": "still there?"}),
        ):
            refused = await request(ws, frame, "error")
            assert refused["code"] == "not_found", frame
        listed = await request(first, {"action": "listConversations"}, "conversations")
        assert [item["conversationId"] for item in listed["items"]] == [kept["conversationId"]]

    erased_after = await _wait_until_erased(local_stack, user.user_id, doomed)
    print(f"deleted conversation erased from the table {erased_after:.2f} s after the answer")
    assert len(await asyncio.to_thread(_items, local_stack, user.user_id, "TURN#")) == 1  # the kept one's


async def test_deleting_a_conversation_stops_its_streaming_reply_and_counts_it(local_stack: LocalStack) -> None:
    info, user = stack_info(local_stack), new_user(local_stack, "streaming")
    async with open_socket(info, user.token) as ws:
        with model_pace(local_stack, Pace(first_token_s=0.05, tokens_per_s=20)):
            accepted = await send_message(ws, "Tell me a very long story about the sea")
            await receive_until(ws, "delta", message_id=accepted["messageId"])
            await send(ws, {"action": "deleteConversation", "conversationId": accepted["conversationId"]})
            # The worker's `cancelled` and the route's `conversationDeleted` may come in either order.
            frames = await receive_until(ws, "conversationDeleted", timeout=15)
            if not any(f["type"] == "cancelled" for f in frames):
                frames += await receive_until(ws, "cancelled", message_id=accepted["messageId"], timeout=15)
            assert [f["messageId"] for f in frames if f["type"] == "cancelled"] == [accepted["messageId"]]
            assert not any(f["type"] == "done" for f in frames)
        usage = await request(ws, {"action": "getUsage"}, "usage")
        assert usage["messages"] == 1
        assert usage["outputTokens"] > 0  # what streamed before the stop is counted
    await _wait_until_erased(local_stack, user.user_id)
    assert await asyncio.to_thread(_items, local_stack, user.user_id, "CONV#") == []


async def test_another_users_conversation_is_not_found(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    alice, mallory = new_user(local_stack, "alice"), new_user(local_stack, "mallory")
    async with open_socket(info, alice.token) as ws:
        conversation_id = (await _reply(ws, "Alice's private notes"))["conversationId"]
    async with open_socket(info, mallory.token) as ws:
        for frame in (
            {"action": "renameConversation", "conversationId": conversation_id, "title": "mine now"},
            {"action": "deleteConversation", "conversationId": conversation_id},
            {"action": "getHistory", "conversationId": conversation_id},
        ):
            refused = await request(ws, frame, "error")
            assert refused["code"] == "not_found", frame
    async with open_socket(info, alice.token) as ws:
        listed = await request(ws, {"action": "listConversations"}, "conversations")
        assert [item["title"] for item in listed["items"]] == ["Alice's private notes"]


async def test_titles_of_stopped_first_replies_and_no_empty_conversations_listed(local_stack: LocalStack) -> None:
    info, user = stack_info(local_stack), new_user(local_stack, "titles")
    async with open_socket(info, user.token) as ws:
        for _ in range(2):
            await request(ws, {"action": "newConversation"}, "conversation")
        assert (await request(ws, {"action": "listConversations"}, "conversations"))["items"] == []

        with model_pace(local_stack, Pace(first_token_s=0.05, tokens_per_s=20)):
            accepted = await send_message(ws, "# Why is the **sky** blue? " + "Explain in detail. " * 10)
            await receive_until(ws, "delta", message_id=accepted["messageId"])
            await send(ws, {"action": "cancel", "messageId": accepted["messageId"]})
            await receive_until(ws, "cancelled", message_id=accepted["messageId"], timeout=15)
        [listed] = (await request(ws, {"action": "listConversations"}, "conversations"))["items"]
        assert listed["conversationId"] == accepted["conversationId"]
        assert listed["title"].startswith("Why is the sky blue? Explain in detail.")
        assert len(listed["title"]) <= 80


async def test_delete_all_data_and_the_admin_script(local_stack: LocalStack, tmp_path: Path) -> None:
    info = stack_info(local_stack)
    user, other = new_user(local_stack, "everything"), new_user(local_stack, "bystander")
    async with open_socket(info, other.token) as ws:
        await _reply(ws, "Not to be touched")
    async with open_socket(info, user.token) as first, open_socket(info, user.token) as second:
        for text in ("first conversation", "second conversation"):
            conversation_id = (await request(first, {"action": "newConversation"}, "conversation"))["conversationId"]
            await _reply(first, text, conversationId=conversation_id)
        assert await request(first, {"action": "deleteAllData"}, "dataDeleted") == {"type": "dataDeleted"}
        await receive_until(second, "dataDeleted")
        assert (await request(second, {"action": "listConversations"}, "conversations"))["items"] == []
        usage = await request(first, {"action": "getUsage"}, "usage")
        assert usage["messages"] == 2  # today's counters are kept: deleting does not reset a quota
    await _wait_until_erased(local_stack, user.user_id)
    assert await asyncio.to_thread(_items, local_stack, user.user_id, "USAGE#") != []

    # The operator's script erases the other user on request, through the stack's connect file.
    stack_json = tmp_path / "stack.json"
    stack_json.write_text(json.dumps(info.stack_json()))
    args = ["--local", "--username", other.username, "--stack-json", str(stack_json)]
    assert await asyncio.to_thread(delete_user_data.main, args) == 0
    for prefix in ("CONV#", "TURN#", "MSG#"):
        assert await asyncio.to_thread(_items, local_stack, other.user_id, prefix) == [], prefix
    async with open_socket(info, other.token) as ws:
        assert (await request(ws, {"action": "listConversations"}, "conversations"))["items"] == []
