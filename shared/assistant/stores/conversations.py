"""Conversation records and the pointer to each user's current conversation.

A conversation record is written untitled; its first message gives it a title (in the same transaction that records
the message, :meth:`ConversationStore.first_message_update`) unless the user renamed it first, and from then on it
is listed. Deleting a conversation deletes its record at once (every reader then finds nothing: ``not_found``); its
turns and message records are erased in the background (:mod:`assistant.stores.erasure`). With a stage's
``retention_days``, the record carries a TTL that every use pushes back.

Several Lambda invocations act for one user at once (two tabs connecting, a worker and the commands function), so
every write that decides "which one" is conditional: the first writer wins and the others adopt its result. That is
what keeps a user with one current conversation. The turns themselves are in :mod:`assistant.stores.turns`; the
record's item, in :mod:`assistant.stores.conversation_records`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["DEFAULT_TITLE", "MAX_TITLE_CHARS", "Conversation", "ConversationStore"]

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from assistant.errors import NotFound
from assistant.stores.conditions import cancellation_reasons, condition_failed, item_condition_failed
from assistant.stores.conversation_records import (
    MAX_TITLE_CHARS,
    Conversation,
    clean_title,
    conversation_from_item,
    conversation_item,
    new_conversation,
)
from assistant.stores.erasure import BatchDeleter
from assistant.stores.keys import (
    CONVERSATION_PREFIX,
    CURRENT_CONVERSATION_SK,
    PK,
    SK,
    TTL,
    conversation_sk,
    key,
    user_pk,
)
from assistant.stores.retention import NO_RETENTION, Retention, expired
from assistant.stores.timestamps import iso_utc
from assistant.titles import DEFAULT_TITLE, conversation_title

#: A pointer that moves under us again and again means something is wrong; don't loop forever.
_CURRENT_ATTEMPTS: Final = 3


class _PointerMoved(Exception):
    """Another invocation changed the current-conversation pointer between our read and our write."""


class ConversationStore:
    """``table`` is a boto3 DynamoDB ``Table`` resource (boto3 ships no type information, hence ``Any``)."""

    def __init__(self, table: Any, *, retention: Retention = NO_RETENTION, clock: Any = time.time) -> None:
        self._table = table
        self._retention = retention
        self._clock = clock

    def create(self, user_id: str, *, now: float) -> Conversation:
        """A new, empty conversation, which becomes the one ``sendMessage`` continues."""
        conversation = new_conversation(user_id, now)
        self._write_with_pointer(conversation, replaces=None, unconditional=True)
        return conversation

    def get(self, user_id: str, conversation_id: str) -> Conversation | None:
        """``None`` also for another user's conversation: the key is in the caller's own partition."""
        item = self._table.get_item(Key=self.record_key(user_id, conversation_id), ConsistentRead=True).get("Item")
        return conversation_from_item(user_id, item) if item and not expired(item, self._clock()) else None

    def first_message_update(self, user_id: str, conversation_id: str, *, text: str, now: float) -> dict[str, Any]:
        """The ``UpdateItem`` request (no ``TableName``) that ``sendMessage`` writes with the message record, in one
        transaction: the conversation is used now (recency, TTL), gets its title from ``text`` unless it has one
        (an earlier message's, or the user's), and is listed from now on. Its condition (the conversation exists
        and has not expired) is what refuses a message to a conversation deleted after the route read it."""
        names = {"#pk": PK, "#updated": "updatedAt", "#title": "title", "#first": "firstMessageAt"}
        values: dict[str, Any] = {":updated": iso_utc(now), ":title": conversation_title(text)}
        expression = "SET #updated = :updated, #title = if_not_exists(#title, :title), "
        expression += "#first = if_not_exists(#first, :updated)"
        expires_at = self._retention.expires_at(now)
        if expires_at is not None:
            expression += ", #ttl = :ttl"
            names["#ttl"] = TTL
            values[":ttl"] = expires_at
        condition, condition_names, condition_values = _live_condition(now)
        return {
            "Key": self.record_key(user_id, conversation_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {**names, **condition_names},
            "ExpressionAttributeValues": {**values, **condition_values},
        }

    def rename(self, user_id: str, conversation_id: str, title: str, *, now: float) -> Conversation:
        """Give the conversation the user's title (kept from now on: a first message no longer sets one).
        :class:`NotFound` for a conversation that does not exist, is another user's, or was deleted."""
        condition, names, values = _live_condition(now)
        names |= {"#title": "title", "#renamed": "renamedAt"}
        values |= {":title": title, ":renamed": iso_utc(now)}
        expression = "SET #title = :title, #renamed = :renamed"
        expires_at = self._retention.expires_at(now)
        if expires_at is not None:
            expression += ", #ttl = :ttl"
            names["#ttl"] = TTL
            values[":ttl"] = expires_at
        try:
            item = self._table.update_item(
                Key=self.record_key(user_id, conversation_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if condition_failed(exc):
                raise NotFound("No such conversation.") from None
            raise
        return conversation_from_item(user_id, item)

    def delete(self, user_id: str, conversation_id: str, *, now: float) -> None:
        """Delete the conversation's record, so that it is ``not_found`` for every action from now on; its turns and
        messages are then orphans, which :class:`~assistant.stores.erasure.UserDataEraser` removes. The pointer to
        the user's current conversation is removed with it when it names this one (the next message without an id
        starts a new conversation). :class:`NotFound` if there is no such conversation of the user's."""
        condition, names, values = _live_condition(now)
        try:
            self._table.delete_item(
                Key=self.record_key(user_id, conversation_id),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise NotFound("No such conversation.") from None
            raise
        try:
            self._table.delete_item(
                Key=self.pointer_key(user_id),
                ConditionExpression="#cid = :cid",
                ExpressionAttributeNames={"#cid": "conversationId"},
                ExpressionAttributeValues={":cid": conversation_id},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    def delete_all(self, user_id: str) -> int:
        """Delete every conversation record of the user and the current-conversation pointer (``BatchWriteItem``,
        25 at a time); returns how many conversations there were. Their turns and messages are then orphans."""
        keys = self.record_keys(user_id)
        BatchDeleter(self._table).delete_all(keys)
        return len(keys) - 1

    def record_keys(self, user_id: str) -> list[dict[str, str]]:
        """The keys of every conversation record of the user, and of the current-conversation pointer if any (what
        ``deleteAllData`` deletes first): a keys-only query."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(CONVERSATION_PREFIX),
            "ProjectionExpression": "#pk, #sk",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ConsistentRead": True,
        }
        keys: list[dict[str, str]] = []
        while True:
            page = self._table.query(**query)
            keys.extend({PK: str(item[PK]), SK: str(item[SK])} for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [*keys, self.pointer_key(user_id)]

    @staticmethod
    def record_key(user_id: str, conversation_id: str) -> dict[str, str]:
        """Where a conversation is kept (to read it with other items)."""
        return key(user_id, conversation_sk(conversation_id))

    @staticmethod
    def pointer_key(user_id: str) -> dict[str, str]:
        """Where the pointer to the user's current conversation is kept (to read it with other items)."""
        return key(user_id, CURRENT_CONVERSATION_SK)

    def current_id(self, user_id: str, *, pointer: Mapping[str, Any] | None, now: float) -> str:
        """The id of the user's current conversation, from the pointer as the caller just read it consistently.

        The pointer is trusted without reading the conversation it names: it is only ever written in the same
        transaction as that conversation (:meth:`_write_with_pointer`) and deleting a conversation deletes a pointer
        that names it; should the two race, ``sendMessage``'s transaction refuses the message (the conversation's
        condition in :meth:`first_message_update`). No pointer (a user's first
        message): the conversation is created here, as :meth:`current`.
        """
        if pointer is not None:
            return str(pointer["conversationId"])
        return self.current(user_id, now=now).conversation_id

    def current(self, user_id: str, *, now: float) -> Conversation:
        """The user's current conversation, created on first use.

        Two first messages from two tabs race here; the pointer is written only if it is still absent (or still
        the value we read), so exactly one conversation wins and the loser reads and returns the winner's.
        """
        for _ in range(_CURRENT_ATTEMPTS):
            pointer = self._table.get_item(Key=self.pointer_key(user_id), ConsistentRead=True).get("Item")
            stale: str | None = None
            if pointer:
                stale = str(pointer["conversationId"])
                existing = self.get(user_id, stale)
                if existing is not None:
                    return existing
            conversation = new_conversation(user_id, now)
            try:
                self._write_with_pointer(conversation, replaces=stale)
            except _PointerMoved:
                continue
            return conversation
        raise RuntimeError("the current-conversation pointer kept changing")

    def count(self, user_id: str) -> int:
        """How many conversations the user keeps (a count-only query: no items are returned)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(CONVERSATION_PREFIX),
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = self._table.query(**query)
            total += int(page.get("Count", 0))
            if not page.get("LastEvaluatedKey"):
                return total
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_recent(self, user_id: str, *, limit: int = 50, before: str | None = None) -> list[Conversation]:
        """Most recently updated first; with ``before`` (a :meth:`Conversation.cursor`), only those after it.

        Conversations are keyed by id, not time, so this reads all of the user's (a few hundred small items at
        most) and sorts them; a time-ordered index would cost a GSI write on every touch for no practical gain.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(CONVERSATION_PREFIX),
            "ConsistentRead": True,
        }
        conversations: list[Conversation] = []
        while True:
            page = self._table.query(**query)
            conversations.extend(
                conversation_from_item(user_id, item)
                for item in page.get("Items", [])
                if not expired(item, self._clock())
            )
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                break
            query["ExclusiveStartKey"] = last_key
        # Only conversations with a message are listed: "New conversation" pressed twice lists nothing new.
        conversations = [c for c in conversations if c.listed]
        conversations.sort(key=lambda c: c.cursor, reverse=True)
        if before is not None:
            conversations = [c for c in conversations if c.cursor < before]
        return conversations[:limit]

    def touch(self, user_id: str, conversation_id: str, *, now: float, title: str | None = None) -> None:
        """Mark the conversation as active (and push its TTL back); ``title`` replaces the default title only
        (a record written before titles came from ``sendMessage``), never a title already set."""
        record_key = self.record_key(user_id, conversation_id)
        updated_at = iso_utc(now)
        title = clean_title(title)
        expires_at = self._retention.expires_at(now)
        extra = ", #ttl = :ttl" if expires_at is not None else ""
        extra_names = {"#ttl": TTL} if expires_at is not None else {}
        extra_values = {":ttl": expires_at} if expires_at is not None else {}
        if title:
            try:
                self._table.update_item(
                    Key=record_key,
                    UpdateExpression="SET #updated = :updated, #title = :title" + extra,
                    ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(#title) OR #title = :default)",
                    ExpressionAttributeNames={"#pk": PK, "#updated": "updatedAt", "#title": "title", **extra_names},
                    ExpressionAttributeValues={
                        ":updated": updated_at,
                        ":title": title,
                        ":default": DEFAULT_TITLE,
                        **extra_values,
                    },
                )
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                # Either the title is already set (the usual case after the first message) or the record is
                # missing; the plain update below tells the two apart.
            else:
                return
        try:
            self._table.update_item(
                Key=record_key,
                UpdateExpression="SET #updated = :updated" + extra,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, "#updated": "updatedAt", **extra_names},
                ExpressionAttributeValues={":updated": updated_at, **extra_values},
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise NotFound("That conversation does not exist.") from None
            raise

    def _write_with_pointer(
        self, conversation: Conversation, *, replaces: str | None, unconditional: bool = False
    ) -> None:
        """Write the conversation and point CURRENT at it in one transaction, so no pointer ever dangles.

        The resource's own client serializes plain Python values, as the ``Table`` methods do.

        The pointer is written only if it is absent (``replaces is None``) or still names ``replaces``; otherwise
        :class:`_PointerMoved` and nothing is written.
        """
        pointer_put: dict[str, Any] = {
            "TableName": self._table.name,
            "Item": {
                **self.pointer_key(conversation.user_id),
                "conversationId": conversation.conversation_id,
                "updatedAt": conversation.updated_at,
            },
        }
        if not unconditional:
            if replaces is None:
                pointer_put["ConditionExpression"] = "attribute_not_exists(#pk)"
                pointer_put["ExpressionAttributeNames"] = {"#pk": PK}
            else:
                pointer_put["ConditionExpression"] = "#cid = :stale"
                pointer_put["ExpressionAttributeNames"] = {"#cid": "conversationId"}
                pointer_put["ExpressionAttributeValues"] = {":stale": replaces}
        item = conversation_item(conversation)
        expires_at = self._retention.expires_at(self._clock())
        if expires_at is not None:
            item[TTL] = expires_at
        conversation_put = {
            "TableName": self._table.name,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": PK},
        }
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=[{"Put": conversation_put}, {"Put": pointer_put}]
            )
        except ClientError as exc:
            if item_condition_failed(cancellation_reasons(exc), 1):
                raise _PointerMoved from None
            raise


def _live_condition(now: float) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition that holds for a conversation that exists and has not expired (a TTL not yet swept)."""
    return (
        "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl > :now_epoch)",
        {"#pk": PK, "#ttl": TTL},
        {":now_epoch": int(now)},
    )
