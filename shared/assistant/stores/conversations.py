"""Conversation records and the pointer to each user's current conversation.

Several Lambda invocations act for one user at once (two tabs connecting, a worker and the commands function), so
every write that decides "which one" is conditional: the first writer wins and the others adopt its result. That is
what keeps a user with one current conversation. The turns themselves are in :mod:`assistant.stores.turns`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from assistant.errors import NotFound
from assistant.protocol import new_id
from assistant.stores.conditions import cancellation_reasons, condition_failed, item_condition_failed
from assistant.stores.keys import CONVERSATION_PREFIX, CURRENT_CONVERSATION_SK, PK, SK, conversation_sk, key, user_pk
from assistant.stores.timestamps import iso_utc

DEFAULT_TITLE: Final = "New conversation"
#: Titles are shown in a list sent in one frame; a long first message must not make that list overflow it.
MAX_TITLE_CHARS: Final = 120
#: A pointer that moves under us again and again means something is wrong; don't loop forever.
_CURRENT_ATTEMPTS: Final = 3


@dataclass(frozen=True)
class Conversation:
    user_id: str
    conversation_id: str
    title: str
    created_at: str
    updated_at: str

    @property
    def cursor(self) -> str:
        """``<updatedAt>#<conversationId>``: orders the list (newest first) and ends a page of it."""
        return f"{self.updated_at}#{self.conversation_id}"


class _PointerMoved(Exception):
    """Another invocation changed the current-conversation pointer between our read and our write."""


class ConversationStore:
    """``table`` is a boto3 DynamoDB ``Table`` resource (boto3 ships no type information, hence ``Any``)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, user_id: str, *, now: float) -> Conversation:
        """A new, empty conversation, which becomes the one ``sendMessage`` continues."""
        conversation = _new_conversation(user_id, now)
        self._write_with_pointer(conversation, replaces=None, unconditional=True)
        return conversation

    def get(self, user_id: str, conversation_id: str) -> Conversation | None:
        """``None`` also for another user's conversation: the key is in the caller's own partition."""
        item = self._table.get_item(Key=self.record_key(user_id, conversation_id), ConsistentRead=True).get("Item")
        return _from_item(user_id, item) if item else None

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
        transaction as that conversation (:meth:`_write_with_pointer`), and conversations are never deleted, so it
        cannot dangle. No pointer (a user's first message): the conversation is created here, as :meth:`current`.
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
            conversation = _new_conversation(user_id, now)
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
            conversations.extend(_from_item(user_id, item) for item in page.get("Items", []))
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                break
            query["ExclusiveStartKey"] = last_key
        conversations.sort(key=lambda c: c.cursor, reverse=True)
        if before is not None:
            conversations = [c for c in conversations if c.cursor < before]
        return conversations[:limit]

    def touch(self, user_id: str, conversation_id: str, *, now: float, title: str | None = None) -> None:
        """Mark the conversation as active; ``title`` replaces the default title only, never a title already set."""
        record_key = self.record_key(user_id, conversation_id)
        updated_at = iso_utc(now)
        title = _clean_title(title)
        if title:
            try:
                self._table.update_item(
                    Key=record_key,
                    UpdateExpression="SET #updated = :updated, #title = :title",
                    ConditionExpression="attribute_exists(#pk) AND #title = :default",
                    ExpressionAttributeNames={"#pk": PK, "#updated": "updatedAt", "#title": "title"},
                    ExpressionAttributeValues={":updated": updated_at, ":title": title, ":default": DEFAULT_TITLE},
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
                UpdateExpression="SET #updated = :updated",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, "#updated": "updatedAt"},
                ExpressionAttributeValues={":updated": updated_at},
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
        conversation_put = {
            "TableName": self._table.name,
            "Item": _to_item(conversation),
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


def _new_conversation(user_id: str, now: float) -> Conversation:
    stamp = iso_utc(now)
    return Conversation(
        user_id=user_id,
        conversation_id=new_id("c"),
        title=DEFAULT_TITLE,
        created_at=stamp,
        updated_at=stamp,
    )


def _to_item(conversation: Conversation) -> dict[str, Any]:
    item: dict[str, Any] = {
        **ConversationStore.record_key(conversation.user_id, conversation.conversation_id),
        "conversationId": conversation.conversation_id,
        "title": conversation.title,
        "createdAt": conversation.created_at,
        "updatedAt": conversation.updated_at,
    }
    return item


def _from_item(user_id: str, item: dict[str, Any]) -> Conversation:
    return Conversation(
        user_id=user_id,
        conversation_id=str(item["conversationId"]),
        title=str(item["title"]),
        created_at=str(item["createdAt"]),
        updated_at=str(item["updatedAt"]),
    )


def _clean_title(title: str | None) -> str | None:
    if title is None:
        return None
    cleaned = " ".join(title.split())
    if len(cleaned) > MAX_TITLE_CHARS:
        cleaned = cleaned[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return cleaned or None
