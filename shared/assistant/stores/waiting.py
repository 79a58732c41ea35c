"""The user's waiting set: the ids of their messages waiting in the queue, capped so that one user cannot fill the
queue faster than their replies are answered.

One item per user (sort key ``WAITING``) holding a string set. A message joins it in the transaction that records
it (:meth:`MessageStore.create`, refused with :class:`TooManyWaiting` when the set is full) and leaves it in the
transaction that claims it, or when it leaves ``queued`` otherwise (cancelled, refused over quota, its conversation
deleted). An entry whose message left ``queued`` without saying so (its record expired) is pruned when the set is
found full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistant.errors import RateLimited
from assistant.stores.keys import WAITING_SK, key

__all__ = ["WAITING_RETRY_AFTER_MS", "TooManyWaiting", "WaitingMessages"]

#: A waiting message is usually claimed within seconds (one reply of the user at a time).
WAITING_RETRY_AFTER_MS = 5_000


class TooManyWaiting(RateLimited):
    """Too many of the user's messages are waiting for an answer: refused at intake, nothing recorded."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} of your messages are still waiting for an answer; send the next one when a reply has started.",
            retry_after_ms=WAITING_RETRY_AFTER_MS,
        )


class WaitingMessages:
    """``table`` is a boto3 DynamoDB ``Table`` resource (boto3 ships no type information, hence ``Any``)."""

    def __init__(self, table: Any) -> None:
        self._table = table
        # The resource's client takes plain Python values (boto3 serializes them), in transactions too.
        self._client = table.meta.client

    def join_update(self, user_id: str, message_id: str, *, max_waiting: int) -> dict[str, Any]:
        """The ``Update`` (for a transaction) that adds the message, on condition that fewer than ``max_waiting``
        are waiting."""
        return self._update(user_id, {message_id}, "ADD", max_waiting=max_waiting)

    def leave_update(self, user_id: str, message_id: str) -> dict[str, Any]:
        """The ``Update`` (for a transaction) that removes the message; no condition: a message recorded without
        the set is fine too."""
        return self._update(user_id, {message_id}, "DELETE")

    def forget(self, user_id: str, message_id: str) -> None:
        """The message left ``queued`` outside a claim (cancelled, refused over quota)."""
        self._client.update_item(**self.leave_update(user_id, message_id))

    def prune(self, user_id: str, *, still_waiting: Callable[[str], bool]) -> bool:
        """Remove the entries whose message is no longer waiting (``still_waiting`` says); whether there were any."""
        item = self._table.get_item(Key=key(user_id, WAITING_SK), ConsistentRead=True).get("Item") or {}
        stale = {str(message_id) for message_id in item.get("waiting", set()) if not still_waiting(str(message_id))}
        if stale:
            self._client.update_item(**self._update(user_id, stale, "DELETE"))
        return bool(stale)

    def _update(
        self, user_id: str, message_ids: set[str], action: str, *, max_waiting: int | None = None
    ) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": key(user_id, WAITING_SK),
            "UpdateExpression": f"{action} waiting :ids",
            "ExpressionAttributeValues": {":ids": message_ids},
        }
        if max_waiting is not None:
            update["ConditionExpression"] = "attribute_not_exists(waiting) OR size(waiting) < :max"
            update["ExpressionAttributeValues"][":max"] = max_waiting
        return update
