"""Erasing deleted conversations against moto: batches within DynamoDB's limits, throttling, deadlines, and never a
live conversation's items."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.conditions import Key

from assistant.stores.conversations import ConversationStore
from assistant.stores.erasure import MAX_BATCH_KEYS, BatchDeleter, UserDataEraser
from assistant.stores.keys import conversation_sk, key, message_sk
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import Turn, TurnStatus

NOW = 1_764_000_000.0


class _ThrottlingClient:
    """DynamoDB's client, except that BatchWriteItem leaves part of each first attempt unprocessed (as throttling
    does) and refuses more than 25 requests per call (as DynamoDB does)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        [(table, requests)] = RequestItems.items()
        if len(requests) > MAX_BATCH_KEYS:
            raise AssertionError(f"BatchWriteItem with {len(requests)} requests; DynamoDB refuses more than 25")
        self.sizes.append(len(requests))
        if len(requests) > 3:  # leave the last three for a later call
            self._client.batch_write_item(RequestItems={table: requests[:-3]})
            return {"UnprocessedItems": {table: requests[-3:]}}
        return dict(self._client.batch_write_item(RequestItems=RequestItems))


class _Meta:
    def __init__(self, client: Any) -> None:
        self.client = client


class _Table:
    def __init__(self, table: Any, client: Any) -> None:
        self._table = table
        self.meta = _Meta(client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def _conversation_with_turns(table: Any, user: str, conversation_id: str, turns: int) -> None:
    table.put_item(Item={**key(user, conversation_sk(conversation_id)), "conversationId": conversation_id})
    with table.batch_writer() as batch:
        for n in range(turns):
            created = iso_utc(NOW + n)
            turn = Turn(conversation_id, f"m{n}", created, "question " * 50, "answer " * 200, TurnStatus.DONE)
            batch.put_item(Item=turn.to_item(user))
            batch.put_item(
                Item={
                    **key(user, message_sk(f"{conversation_id}-m{n}")),
                    "userId": user,
                    "messageId": f"{conversation_id}-m{n}",
                    "conversationId": conversation_id,
                    "status": "done",
                    "createdAt": created,
                }
            )


def _count(table: Any, user: str, prefix: str) -> int:
    query: dict[str, Any] = {
        "KeyConditionExpression": Key("pk").eq(f"USER#{user}") & Key("sk").begins_with(prefix),
        "Select": "COUNT",
    }
    total = 0
    while True:
        page = table.query(**query)
        total += page["Count"]
        if not page.get("LastEvaluatedKey"):
            return total
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_very_long_deleted_conversation_is_erased_in_batches_of_at_most_25(ddb_table: Any) -> None:
    _conversation_with_turns(ddb_table, "alice", "c_long", 1_030)
    _conversation_with_turns(ddb_table, "alice", "c_kept", 7)
    _conversation_with_turns(ddb_table, "bob", "c_long", 5)  # the same id under another user: not alice's
    ConversationStore(ddb_table).delete("alice", "c_long", now=NOW)
    client = _ThrottlingClient(ddb_table.meta.client)
    deleter = BatchDeleter(_Table(ddb_table, client), sleep=lambda s: None)

    result = UserDataEraser(ddb_table, clock=lambda: NOW, deleter=deleter).erase_orphans("alice")

    assert result.finished
    assert (result.turns, result.messages) == (1_030, 1_030)
    assert _count(ddb_table, "alice", "TURN#") == 7
    assert _count(ddb_table, "alice", "MSG#") == 7
    assert _count(ddb_table, "bob", "TURN#") == 5
    assert max(client.sizes) == MAX_BATCH_KEYS
    # Every unprocessed delete was sent again (2060 deletes, 3 of each full batch a second time).
    assert sum(client.sizes) > 2 * 1_030


def test_a_run_stops_at_its_deadline_and_the_next_one_finishes(ddb_table: Any) -> None:
    _conversation_with_turns(ddb_table, "alice", "c_long", 60)
    ConversationStore(ddb_table).delete("alice", "c_long", now=NOW)

    stopped = UserDataEraser(ddb_table, clock=lambda: NOW).erase_orphans("alice", deadline=0)
    assert not stopped.finished
    assert _count(ddb_table, "alice", "TURN#") == 60

    again = UserDataEraser(ddb_table, clock=lambda: NOW).erase_orphans("alice")
    assert again.finished
    assert _count(ddb_table, "alice", "TURN#") == _count(ddb_table, "alice", "MSG#") == 0


def test_a_streaming_message_is_left_to_its_worker_unless_its_worker_died(ddb_table: Any) -> None:
    _conversation_with_turns(ddb_table, "alice", "c_x", 0)
    for message_id, progress in (("live", NOW - 30), ("dead", NOW - 3_600)):
        ddb_table.put_item(
            Item={
                **key("alice", message_sk(message_id)),
                "messageId": message_id,
                "conversationId": "c_x",
                "status": "streaming",
                "claimedAt": iso_utc(NOW - 3_600),
                "progressAt": iso_utc(progress),
            }
        )
    ConversationStore(ddb_table).delete("alice", "c_x", now=NOW)

    UserDataEraser(ddb_table, clock=lambda: NOW).erase_orphans("alice")

    assert ddb_table.get_item(Key=key("alice", message_sk("live"))).get("Item") is not None
    assert ddb_table.get_item(Key=key("alice", message_sk("dead"))).get("Item") is None


def test_a_batch_over_dynamodbs_limit_is_refused_before_any_call(ddb_table: Any) -> None:
    with pytest.raises(ValueError, match="at most 25"):
        BatchDeleter(ddb_table).delete([key("alice", f"TURN#c#{n}") for n in range(26)])
