"""Erasing what deleted conversations leave behind: their turns, their message records and their files.

Deleting a conversation (or all of a user's) deletes its record at once, in the route (every reader then answers
``not_found``); what hangs off it can be far larger (a long conversation has thousands of turns of up to ~400 KB),
so it is removed here, by the worker, from a message on the queue (``assistant.queue.EraseRequest``).

The eraser does not need to be told which conversations were deleted: it removes every turn and message record of
the user whose conversation record no longer exists (an *orphan*). That makes a run idempotent and self-healing:
a run that was interrupted, or a request that was never enqueued, is made good by the next run for that user (or
by ``scripts.delete_user_data``). Nothing of a live conversation is ever touched, because of the order of the reads:
the candidates are read first and the live conversations after them, and a conversation is always written before
its first message and turn, so a candidate whose conversation is missing from the later read was deleted. Nothing
new can appear under a deleted conversation either: ``sendMessage``, the worker's claim and the transaction that
writes a turn all check, in the same transaction, that the conversation exists.

Deletes go in ``BatchWriteItem`` calls of at most 25 keys (DynamoDB's limit per call), unprocessed keys retried
with exponential backoff; a run stops at its deadline and says so, and the caller enqueues the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.conditions import Key

from assistant.attachments import orphan_uploads
from assistant.stores.keys import CONVERSATION_PREFIX, MESSAGE_PREFIX, PK, SK, TURN_PREFIX, UPLOAD_PREFIX, user_pk
from assistant.stores.timestamps import iso_utc

if TYPE_CHECKING:
    from assistant.attachments import AttachmentFiles

#: What DynamoDB accepts in one BatchWriteItem.
MAX_BATCH_KEYS: Final = 25
#: Unprocessed keys (throttling) are retried this many times, backing off exponentially, before the run fails.
_MAX_ROUNDS: Final = 8
_FIRST_BACKOFF_S: Final = 0.05
#: A message still ``streaming`` is left to its worker (which removes its record when it finds the conversation
#: gone, after counting its tokens), unless it made no progress for longer than a worker may run.
STREAMING_GRACE_S: Final = 15 * 60

Item = dict[str, Any]


class BatchDeleter:
    """Deletes keys in ``BatchWriteItem`` calls of :data:`MAX_BATCH_KEYS`. ``table`` is a boto3 ``Table``."""

    def __init__(self, table: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._sleep = sleep
        #: ``BatchWriteItem`` calls made (a test reads it to see that batches stay within DynamoDB's limit).
        self.calls = 0

    def delete(self, keys: Sequence[Mapping[str, str]]) -> int:
        """Delete ``keys`` (at most :data:`MAX_BATCH_KEYS`); returns how many were asked for."""
        if len(keys) > MAX_BATCH_KEYS:
            raise ValueError(f"one BatchWriteItem deletes at most {MAX_BATCH_KEYS} items, got {len(keys)}")
        pending = [{"DeleteRequest": {"Key": dict(k)}} for k in keys]
        for round_ in range(_MAX_ROUNDS):
            if not pending:
                return len(keys)
            if round_:
                self._sleep(_FIRST_BACKOFF_S * 2 ** (round_ - 1))
            self.calls += 1
            response = self._table.meta.client.batch_write_item(RequestItems={self._table.name: pending})
            pending = response.get("UnprocessedItems", {}).get(self._table.name, [])
        if pending:
            raise RuntimeError(f"DynamoDB left {len(pending)} deletes unprocessed after {_MAX_ROUNDS} rounds")
        return len(keys)

    def delete_all(self, keys: Iterable[Mapping[str, str]], *, deadline: float | None = None) -> tuple[int, bool]:
        """Delete ``keys`` batch by batch until ``deadline`` (``time.time()``); ``(deleted, finished)``."""
        deleted = 0
        for batch in _batches(keys, MAX_BATCH_KEYS):
            if deadline is not None and time.time() >= deadline:
                return deleted, False
            deleted += self.delete(batch)
        return deleted, True


@dataclass(frozen=True)
class ErasureResult:
    turns: int
    messages: int
    #: ``False``: the deadline came first; run again for the rest.
    finished: bool


class UserDataEraser:
    """Removes the turns and message records of a user's deleted conversations (see the module's docstring)."""

    def __init__(
        self,
        table: Any,
        *,
        clock: Callable[[], float] = time.time,
        deleter: BatchDeleter | None = None,
        files: AttachmentFiles | None = None,
    ):
        self._files = files
        self._table = table
        self._clock = clock
        self._deleter = deleter or BatchDeleter(table)

    def erase_orphans(self, user_id: str, *, deadline: float | None = None) -> ErasureResult:
        turns = list(self._query(user_id, TURN_PREFIX, ("#pk", "#sk"), {"#pk": PK, "#sk": SK}))
        messages = list(
            self._query(
                user_id,
                MESSAGE_PREFIX,
                ("#pk", "#sk", "conversationId", "#status", "claimedAt", "progressAt"),
                {"#pk": PK, "#sk": SK, "#status": "status"},
            )
        )
        uploads = (
            list(self._query(user_id, UPLOAD_PREFIX, ("#pk", "#sk", "conversationId"), {"#pk": PK, "#sk": SK}))
            if self._files is not None
            else []
        )
        # After the candidates (see the module's docstring for why this order makes the run safe).
        live = {
            str(item[SK])[len(CONVERSATION_PREFIX) :]
            for item in self._query(user_id, CONVERSATION_PREFIX, ("#pk", "#sk"), {"#pk": PK, "#sk": SK})
        }
        orphan_turns = [_key(item) for item in turns if _turn_conversation(str(item[SK])) not in live]
        stale_before = iso_utc(self._clock() - STREAMING_GRACE_S)
        orphan_messages = [
            _key(item)
            for item in messages
            if str(item.get("conversationId")) not in live and not _still_streaming(item, stale_before)
        ]
        deleted_turns, finished = self._deleter.delete_all(orphan_turns, deadline=deadline)
        deleted_messages = 0
        if finished:
            deleted_messages, finished = self._deleter.delete_all(orphan_messages, deadline=deadline)
        if finished and self._files is not None:
            # An attached file goes with its conversation: the object first, then the record that points at it.
            orphan_files = orphan_uploads(uploads, live)
            for upload_id, _ in orphan_files:
                self._files.delete(user_id, upload_id)
            _, finished = self._deleter.delete_all([k for _, k in orphan_files], deadline=deadline)
        return ErasureResult(turns=deleted_turns, messages=deleted_messages, finished=finished)

    def _query(self, user_id: str, prefix: str, attributes: Sequence[str], names: Mapping[str, str]) -> Iterator[Item]:
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(prefix),
            "ProjectionExpression": ", ".join(attributes),
            "ExpressionAttributeNames": dict(names),
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**query)
            yield from page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _key(item: Item) -> dict[str, str]:
    return {PK: str(item[PK]), SK: str(item[SK])}


def _turn_conversation(sort_key: str) -> str:
    """``TURN#<conversationId>#<createdAt>#<messageId>``: ids hold no ``#``."""
    return sort_key[len(TURN_PREFIX) :].split("#", 1)[0]


def _still_streaming(item: Item, stale_before: str) -> bool:
    if item.get("status") != "streaming":
        return False
    last = item.get("progressAt") or item.get("claimedAt")
    return last is None or str(last) >= stale_before


def _batches(keys: Iterable[Mapping[str, str]], size: int) -> Iterator[list[Mapping[str, str]]]:
    batch: list[Mapping[str, str]] = []
    for k in keys:
        batch.append(k)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
