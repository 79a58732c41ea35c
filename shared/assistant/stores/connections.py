"""Connection records: which WebSocket connections a user has open right now.

One record per connection under the user's partition, so every tab of a user gets the reply and closing one tab
leaves the others alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from assistant.stores.keys import CONNECTION_PREFIX, PK, SK, TTL, connection_sk, key, user_pk
from assistant.stores.timestamps import iso_utc
from assistant.wiring import CONNECTION_TTL_SECONDS, TOKEN_LEEWAY_SECONDS


class ConnectionStore:
    """``table`` is a boto3 DynamoDB ``Table`` resource (boto3 ships no type information, hence ``Any``)."""

    def __init__(self, table: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def add(self, user_id: str, connection_id: str, *, now: float, token_expires_at: int | None = None) -> None:
        # API Gateway ends every connection within 2 h, so a record whose $disconnect was lost expires; a connection
        # also ends with its token, so from then on the worker no longer posts to it (list_ids filters on this).
        expires_at = int(now) + CONNECTION_TTL_SECONDS
        if token_expires_at is not None:
            expires_at = min(expires_at, token_expires_at + TOKEN_LEEWAY_SECONDS)
        self._table.put_item(
            Item={
                **key(user_id, connection_sk(connection_id)),
                "connectionId": connection_id,
                "connectedAt": iso_utc(now),
                TTL: expires_at,
            }
        )

    def remove(self, user_id: str, connection_id: str) -> None:
        """Idempotent: ``$disconnect`` and a ``GoneException`` may both remove the same connection."""
        self._table.delete_item(Key=key(user_id, connection_sk(connection_id)))

    def list_ids(self, user_id: str) -> list[str]:
        """The user's live connections, read consistently so a tab that just connected gets the next frame."""
        # DynamoDB deletes expired items up to days late; an expired record is a connection API Gateway has closed.
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(CONNECTION_PREFIX),
            "FilterExpression": Attr(TTL).gt(int(self._clock())),
            "ProjectionExpression": "#sk",
            "ExpressionAttributeNames": {"#sk": SK},
            "ConsistentRead": True,
        }
        ids: list[str] = []
        while True:
            page = self._table.query(**query)
            ids.extend(str(item[SK])[len(CONNECTION_PREFIX) :] for item in page.get("Items", []))
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return ids
            query["ExclusiveStartKey"] = last_key
