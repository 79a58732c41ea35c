"""Key formats of the single table. The item types and their attributes are documented in docs/architecture.md."""

from __future__ import annotations

from typing import Final

from assistant.wiring import TABLE

PK: Final = TABLE.partition_key
SK: Final = TABLE.sort_key
TTL: Final = TABLE.ttl_attribute

CONNECTION_PREFIX: Final = "CONN#"
CONVERSATION_PREFIX: Final = "CONV#"
MESSAGE_PREFIX: Final = "MSG#"
USAGE_PREFIX: Final = "USAGE#"
RATE_LIMIT_PREFIX: Final = "RATE#"
#: One item per finished turn of a conversation (user message + reply): what the model is sent and history shows.
TURN_PREFIX: Final = "TURN#"
#: One item per upload of an attachment (``assistant.attachments``): its name, type, size and, once attached, its
#: conversation.
UPLOAD_PREFIX: Final = "UPLOAD#"
#: The set of the user's messages that wait to be claimed (see MessageStore.create).
WAITING_SK: Final = "WAITING"
#: The count of the user's connection records, kept with them in the same transactions (the connection cap).
OPEN_CONNECTIONS_SK: Final = "OPEN_CONNECTIONS"
#: The pointer to the user's current conversation (the one `sendMessage` without `conversationId` continues).
CURRENT_CONVERSATION_SK: Final = "CURRENT"


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def connection_sk(connection_id: str) -> str:
    return f"{CONNECTION_PREFIX}{connection_id}"


def conversation_sk(conversation_id: str) -> str:
    return f"{CONVERSATION_PREFIX}{conversation_id}"


def message_sk(message_id: str) -> str:
    return f"{MESSAGE_PREFIX}{message_id}"


def turn_prefix(conversation_id: str) -> str:
    """Every turn of one conversation starts with this; the ids hold no ``#``, so no conversation's prefix is
    another's."""
    return f"{TURN_PREFIX}{conversation_id}#"


def turn_sk(conversation_id: str, created_at: str, message_id: str) -> str:
    """``created_at`` is the user message's ISO-8601 UTC time (fixed width), so turns sort oldest first; the
    message id makes the key unique and a redelivery's write land on the same item."""
    return f"{turn_prefix(conversation_id)}{created_at}#{message_id}"


def usage_sk(day: str) -> str:
    """``day`` is the UTC date, ``YYYY-MM-DD``: quotas reset at midnight UTC."""
    return f"{USAGE_PREFIX}{day}"


def rate_limit_sk(bucket: str) -> str:
    """One token bucket per kind of request (``sendMessage``, ``getHistory``, ...)."""
    return f"{RATE_LIMIT_PREFIX}{bucket}"


def key(user_id: str, sort_key: str) -> dict[str, str]:
    return {PK: user_pk(user_id), SK: sort_key}
