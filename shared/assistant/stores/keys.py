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
#: The set of the user's messages that wait to be claimed (see MessageStore.create).
WAITING_SK: Final = "WAITING"
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


def usage_sk(day: str) -> str:
    """``day`` is the UTC date, ``YYYY-MM-DD``: quotas reset at midnight UTC."""
    return f"{USAGE_PREFIX}{day}"


def rate_limit_sk(bucket: str) -> str:
    """One token bucket per kind of request (``sendMessage``, ``getHistory``, ...)."""
    return f"{RATE_LIMIT_PREFIX}{bucket}"


def key(user_id: str, sort_key: str) -> dict[str, str]:
    return {PK: user_pk(user_id), SK: sort_key}
