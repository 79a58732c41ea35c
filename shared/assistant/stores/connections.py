"""Connection records: which WebSocket connections a user has open right now.

One record per connection under the user's partition, so every tab of a user gets the reply and closing one tab
leaves the others alone.

Beside them, a counter of the user's records (``OPEN_CONNECTIONS``): a record is only ever written or deleted in a
transaction that moves the counter with it, so ``$connect`` enforces the cap with one conditional write (``ADD``
while the count is below the cap) instead of counting and then inserting. Counting first let parallel connects all
see room (40 parallel connects opened 12-13 connections against a cap of 10); DynamoDB checks the condition and
applies the ``ADD`` atomically, however many Lambdas race.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from assistant.stores.conditions import cancellation_reasons, condition_failed, item_condition_failed
from assistant.stores.keys import CONNECTION_PREFIX, OPEN_CONNECTIONS_SK, PK, SK, TTL, connection_sk, key, user_pk
from assistant.stores.timestamps import iso_utc
from assistant.wiring import CONNECTION_TTL_SECONDS, TOKEN_LEEWAY_SECONDS

#: The counter's attribute on the ``OPEN_CONNECTIONS`` item.
_OPEN = "open"
#: Where each item sits in the transactions below (cancellation reasons come back in this order).
_RECORD, _COUNTER = 0, 1


class ConnectionStore:
    """``table`` is a boto3 DynamoDB ``Table`` resource (boto3 ships no type information, hence ``Any``)."""

    def __init__(self, table: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._client = table.meta.client
        self._clock = clock

    def add(
        self,
        user_id: str,
        connection_id: str,
        *,
        now: float,
        token_expires_at: int | None = None,
        cap: int | None = None,
    ) -> bool:
        """Record the connection and count it, atomically; ``False`` (nothing written) when the user already has
        ``cap`` connections. A repeated ``$connect`` of the same connection is counted once."""
        # API Gateway ends every connection within 2 h, so a record whose $disconnect was lost expires; a connection
        # also ends with its token, so from then on the worker no longer posts to it (list_ids filters on this).
        expires_at = int(now) + CONNECTION_TTL_SECONDS
        if token_expires_at is not None:
            expires_at = min(expires_at, token_expires_at + TOKEN_LEEWAY_SECONDS)
        record = {
            **key(user_id, connection_sk(connection_id)),
            "connectionId": connection_id,
            "connectedAt": iso_utc(now),
            TTL: expires_at,
        }
        for attempt in range(2):
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table.name,
                                "Item": record,
                                "ConditionExpression": "attribute_not_exists(#pk)",
                                "ExpressionAttributeNames": {"#pk": PK},
                            }
                        },
                        {"Update": self._count(user_id, +1, cap=cap)},
                    ]
                )
                return True
            except ClientError as exc:
                reasons = cancellation_reasons(exc)
                if item_condition_failed(reasons, _RECORD):
                    return True  # this very connection is already recorded and counted
                if not item_condition_failed(reasons, _COUNTER):
                    raise
            # Full by the count. Records whose $disconnect never came (expired, or deleted by TTL) still count until
            # they are reclaimed; then try once more.
            if attempt == 0 and not self._reclaim(user_id, now=now):
                return False
        return False

    def remove(self, user_id: str, connection_id: str) -> None:
        """Forget the connection and uncount it. Idempotent: ``$disconnect`` and a ``GoneException`` may both remove
        the same connection, and only the one that finds the record uncounts it."""
        self._remove(user_id, connection_id)

    def list_ids(self, user_id: str) -> list[str]:
        """The user's live connections, read consistently so a tab that just connected gets the next frame."""
        # DynamoDB deletes expired items up to days late; an expired record is a connection API Gateway has closed.
        return [connection_id for connection_id, _ in self._records(user_id, live_at=int(self._clock()))]

    def open_count(self, user_id: str) -> int:
        """The counter the cap is checked against (read consistently)."""
        item = self._table.get_item(Key=key(user_id, OPEN_CONNECTIONS_SK), ConsistentRead=True).get("Item") or {}
        return int(item.get(_OPEN, 0))

    # --- internals --------------------------------------------------------------------------------------------

    def _count(self, user_id: str, delta: int, *, cap: int | None = None) -> dict[str, Any]:
        """The counter's ``UpdateItem`` (within a transaction): ``+1`` only below ``cap``, ``-1`` only above 0."""
        update: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": key(user_id, OPEN_CONNECTIONS_SK),
            "UpdateExpression": "ADD #open :delta",
            "ExpressionAttributeNames": {"#open": _OPEN},
            "ExpressionAttributeValues": {":delta": delta},
        }
        if delta > 0 and cap is not None:
            update["ConditionExpression"] = "attribute_not_exists(#open) OR #open < :cap"
            update["ExpressionAttributeValues"][":cap"] = cap
        elif delta < 0:
            update["ConditionExpression"] = "#open > :zero"
            update["ExpressionAttributeValues"][":zero"] = 0
        return update

    def _remove(self, user_id: str, connection_id: str, *, expired_by: int | None = None) -> bool:
        """Delete the record and uncount it in one transaction (with ``expired_by``: only if it expired by then);
        whether this call removed it."""
        condition = "attribute_exists(#pk)"
        names = {"#pk": PK}
        values: dict[str, Any] = {}
        if expired_by is not None:
            condition += " AND #ttl <= :now"
            names["#ttl"] = TTL
            values[":now"] = expired_by
        delete: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": key(user_id, connection_sk(connection_id)),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            delete["ExpressionAttributeValues"] = values
        try:
            self._client.transact_write_items(TransactItems=[{"Delete": delete}, {"Update": self._count(user_id, -1)}])
            return True
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if item_condition_failed(reasons, _RECORD):
                return False  # already removed (or, with expired_by, still live)
            if not item_condition_failed(reasons, _COUNTER):
                raise
        # A record the counter does not count (written before the counter existed): delete it alone.
        self._table.delete_item(Key=delete["Key"])
        return True

    def _reclaim(self, user_id: str, *, now: float) -> bool:
        """Make the count true again; whether there is room now.

        Records expire without a ``$disconnect`` (a lost one, or a connection that outlived its token), and
        DynamoDB's TTL deletes them days later without touching the counter. Expired records are removed here
        (each with its decrement), then the counter is set to the records left, on condition that it has not
        moved since it was read: a connect or disconnect in between moves records and counter together, so the
        condition refuses a count that no longer matches and nothing is ever under-counted.
        """
        now_s = int(now)
        reclaimed = False
        for connection_id, expires_at in self._records(user_id):
            if expires_at <= now_s:
                reclaimed = self._remove(user_id, connection_id, expired_by=now_s) or reclaimed
        seen = self.open_count(user_id)
        records = len(self._records(user_id))
        if records >= seen:
            return reclaimed
        try:
            self._table.update_item(
                Key=key(user_id, OPEN_CONNECTIONS_SK),
                UpdateExpression="SET #open = :records",
                ConditionExpression="#open = :seen",
                ExpressionAttributeNames={"#open": _OPEN},
                ExpressionAttributeValues={":records": records, ":seen": seen},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
        return True  # counted again, or it moved meanwhile: either way worth one more try

    def _records(self, user_id: str, *, live_at: int | None = None) -> list[tuple[str, int]]:
        """``(connection id, expiresAt)`` of the user's records (only those live at ``live_at``), read consistently."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(CONNECTION_PREFIX),
            "ProjectionExpression": "#sk, #ttl",
            "ExpressionAttributeNames": {"#sk": SK, "#ttl": TTL},
            "ConsistentRead": True,
        }
        if live_at is not None:
            query["FilterExpression"] = Attr(TTL).gt(live_at)
        found: list[tuple[str, int]] = []
        while True:
            page = self._table.query(**query)
            found.extend(
                (str(item[SK])[len(CONNECTION_PREFIX) :], int(item.get(TTL, 0))) for item in page.get("Items", [])
            )
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return found
            query["ExclusiveStartKey"] = last_key
