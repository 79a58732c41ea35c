"""What ``getHistory`` reads against what it returns: 30 turns of ~32 KB, as in issue 22 (every call read 961 KB,
269 strongly consistent read units, to return 96 KB). boto3 against moto; the bytes read are every DynamoDB
response body the call received, counted by botocore's own events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import commands
import pytest

from assistant.model_events import ToolExchange
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import Turn, TurnStatus
from tests.integration.conftest import Deployment

TURNS = 30
#: Each turn's two texts together: ~32 KB, what one reply of a long answer weighs.
TURN_TEXT_BYTES = 32 * 1024
#: Read at most this many bytes per byte returned.
MAX_READ_RATIO = 2.0


@dataclass
class _Reads:
    bytes_read: int = 0
    queries: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def _counting_reads(client: Any) -> Iterator[_Reads]:
    reads = _Reads()

    def before(params: dict[str, Any], **_: Any) -> None:
        reads.queries.append(params)

    def after(http_response: Any, **_: Any) -> None:
        reads.bytes_read += len(http_response.content)

    client.meta.events.register("provide-client-params.dynamodb.Query", before)
    client.meta.events.register("after-call.dynamodb", after)
    try:
        yield reads
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.Query", before)
        client.meta.events.unregister("after-call.dynamodb", after)


def _seed(deployment: Deployment, *, tool_call_bytes: int = 0) -> str:
    """A conversation of :data:`TURNS` finished turns of ~32 KB each (and, with ``tool_call_bytes``, a tool call
    of that size each, which only the model is sent)."""
    conversation = commands.dependencies().conversations.create("alice", now=time.time())
    start = time.time() - 3600
    for i in range(TURNS):
        exchanges = (ToolExchange(f"call_{i}", "lookup", "{}", "t" * tool_call_bytes),) if tool_call_bytes else ()
        turn = Turn(
            conversation_id=conversation.conversation_id,
            message_id=f"m{i:02d}",
            created_at=iso_utc(start + i),
            user_text=f"Question {i}: " + "q" * 1000,
            assistant_text="a" * (TURN_TEXT_BYTES - 1000),
            status=TurnStatus.DONE,
            model="gpt-test",
            input_tokens=10,
            output_tokens=10,
            exchanges=exchanges,
        )
        deployment.table.put_item(Item=turn.to_item("alice"))
    return conversation.conversation_id


def _history(deployment: Deployment, conversation_id: str, **page: Any) -> tuple[dict[str, Any], int, _Reads]:
    client = commands.dependencies().turns._table.meta.client
    event = deployment.ws_event("getHistory", {"action": "getHistory", "conversationId": conversation_id, **page})
    with _counting_reads(client) as reads:
        response = deployment.call(commands.handler, event)
    body = response["body"]
    return json.loads(body), len(body.encode()), reads


@pytest.mark.parametrize("tool_call_bytes", [0, 8_000], ids=["texts-only", "with-tool-calls"])
def test_get_history_reads_about_what_it_returns(deployment: Deployment, tool_call_bytes: int) -> None:
    conversation_id = _seed(deployment, tool_call_bytes=tool_call_bytes)

    newest, returned, reads = _history(deployment, conversation_id)

    assert newest["type"] == "history"
    shown = [m for m in newest["messages"] if m["role"] == "user"]
    assert 2 <= len(shown) < TURNS  # stopped at the frame budget, not at the page's limit of turns
    assert newest["cursor"]
    print(f"newest page: read {reads.bytes_read} bytes, returned {returned} ({reads.bytes_read / returned:.2f}x)")
    assert reads.bytes_read <= MAX_READ_RATIO * returned
    assert all("toolCalls" not in str(query.get("ProjectionExpression", "toolCalls")) for query in reads.queries)
    # The newest page may hold a turn that has just finished: read strongly consistent.
    assert all(query["ConsistentRead"] for query in reads.queries)

    older, returned, reads = _history(deployment, conversation_id, before=newest["cursor"])

    assert [m["text"] for m in older["messages"] if m["role"] == "user"][-1].startswith(
        f"Question {TURNS - len(shown) - 1}:"
    )
    print(f"older page: read {reads.bytes_read} bytes, returned {returned} ({reads.bytes_read / returned:.2f}x)")
    assert reads.bytes_read <= MAX_READ_RATIO * returned
    # Older turns never change once a newer one was shown: eventually consistent, half the read units.
    assert not any(query["ConsistentRead"] for query in reads.queries)


def test_an_empty_conversation_is_told_apart_from_someone_elses(deployment: Deployment) -> None:
    """Only an empty page reads the conversation's record: found turns prove it is the user's own."""
    accepted = deployment.route(commands.handler, {"action": "newConversation"})
    assert accepted is not None
    empty, _, reads = _history(deployment, accepted["conversationId"])
    assert (empty["messages"], empty.get("cursor")) == ([], None)
    assert len(reads.queries) == 1
    missing = deployment.route(commands.handler, {"action": "getHistory", "conversationId": "c_nope"})
    assert missing is not None
    assert missing["code"] == "not_found"
