"""A conversation as its record holds it: the :class:`Conversation` the store returns, and the record's item (the
store is :mod:`assistant.stores.conversations`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from assistant.client_frames import new_id
from assistant.stores.keys import conversation_sk, key
from assistant.stores.timestamps import iso_utc
from assistant.titles import DEFAULT_TITLE

__all__ = [
    "MAX_TITLE_CHARS",
    "Conversation",
    "clean_title",
    "conversation_from_item",
    "conversation_item",
    "new_conversation",
]

#: Titles are shown in a list sent in one frame; a long first message must not make that list overflow it.
MAX_TITLE_CHARS: Final = 120


@dataclass(frozen=True)
class Conversation:
    user_id: str
    conversation_id: str
    title: str
    created_at: str
    updated_at: str
    #: Listed: it has a message (an empty "New conversation" is kept for the user's next message, but not listed).
    listed: bool = field(default=True, compare=False)

    @property
    def cursor(self) -> str:
        """``<updatedAt>#<conversationId>``: orders the list (newest first) and ends a page of it."""
        return f"{self.updated_at}#{self.conversation_id}"


def new_conversation(user_id: str, now: float) -> Conversation:
    stamp = iso_utc(now)
    return Conversation(
        user_id=user_id,
        conversation_id=new_id("c"),
        title=DEFAULT_TITLE,
        created_at=stamp,
        updated_at=stamp,
    )


def conversation_item(conversation: Conversation) -> dict[str, Any]:
    # No title: the first message gives it one (``if_not_exists``), unless the user renames it first.
    item: dict[str, Any] = {
        **key(conversation.user_id, conversation_sk(conversation.conversation_id)),
        "conversationId": conversation.conversation_id,
        "createdAt": conversation.created_at,
        "updatedAt": conversation.updated_at,
    }
    if conversation.title != DEFAULT_TITLE:
        item["title"] = conversation.title
    return item


def conversation_from_item(user_id: str, item: dict[str, Any]) -> Conversation:
    title = str(item.get("title") or DEFAULT_TITLE)
    # Records written before titles came with the first message have a title only once a reply gave them one.
    listed = "firstMessageAt" in item or (title != DEFAULT_TITLE and "renamedAt" not in item)
    return Conversation(
        user_id=user_id,
        conversation_id=str(item["conversationId"]),
        title=title,
        created_at=str(item["createdAt"]),
        updated_at=str(item["updatedAt"]),
        listed=listed,
    )


def clean_title(title: str | None) -> str | None:
    if title is None:
        return None
    cleaned = " ".join(title.split())
    if len(cleaned) > MAX_TITLE_CHARS:
        cleaned = cleaned[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return cleaned or None
