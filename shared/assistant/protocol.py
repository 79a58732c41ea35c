"""The WebSocket protocol: every frame a client sends and every frame the server sends.

This is a contract (``docs/protocol.md``); clients depend on the field names. Client frames are validated with
pydantic so that bad input becomes a precise ``error`` frame; server frames are built from these models so no
handler can invent a shape of its own.
"""

from __future__ import annotations

import json
import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from assistant.errors import AssistantError, BadRequest, ErrorCode, TooLarge, UnknownAction

#: Ids a client may choose: short, URL- and key-safe, so they can be used in DynamoDB keys and SQS dedup ids.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)

ClientId = Annotated[str, Field(pattern=ID_PATTERN)]


def new_id(prefix: str) -> str:
    """A server-assigned id: ``prefix`` + 24 hex chars (fits :data:`ID_PATTERN`)."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# --- Client -> server -------------------------------------------------------------------------------------------


class _ClientFrame(BaseModel):
    # Unknown fields are ignored rather than rejected so older servers accept newer clients.
    model_config = ConfigDict(extra="ignore", frozen=True)


class SendMessage(_ClientFrame):
    action: Literal["sendMessage"]
    message: str
    message_id: ClientId | None = Field(default=None, alias="messageId")
    conversation_id: ClientId | None = Field(default=None, alias="conversationId")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value


class Cancel(_ClientFrame):
    action: Literal["cancel"]
    message_id: ClientId = Field(alias="messageId")


class NewConversation(_ClientFrame):
    action: Literal["newConversation"]


class ListConversations(_ClientFrame):
    action: Literal["listConversations"]


class GetHistory(_ClientFrame):
    action: Literal["getHistory"]
    conversation_id: ClientId = Field(alias="conversationId")


class Ping(_ClientFrame):
    action: Literal["ping"]


ClientFrame = Annotated[
    SendMessage | Cancel | NewConversation | ListConversations | GetHistory | Ping,
    Field(discriminator="action"),
]
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
ACTIONS: frozenset[str] = frozenset(
    {"sendMessage", "cancel", "newConversation", "listConversations", "getHistory", "ping"}
)


def parse_client_frame(body: str | None, *, max_message_chars: int) -> ClientFrame:
    """Parse one client frame, raising an :class:`AssistantError` with the protocol's code for bad input."""
    if body is None or not body.strip():
        raise BadRequest("The frame is empty; send a JSON object with an `action`.")
    try:
        raw = json.loads(body)
    except json.JSONDecodeError:
        raise BadRequest("The frame is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise BadRequest("The frame must be a JSON object.")
    action = raw.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise UnknownAction(f"Unknown action {action!r}; expected one of {sorted(ACTIONS)}.")
    message = raw.get("message")
    if action == "sendMessage" and isinstance(message, str) and len(message) > max_message_chars:
        raise TooLarge(f"The message has {len(message)} characters; the limit is {max_message_chars}.")
    try:
        return _CLIENT_FRAME.validate_python(raw)
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p not in ACTIONS) or "frame"
        parts.append(f"`{where}`: {error['msg']}")
    return "Invalid frame: " + "; ".join(parts)


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


# --- Server -> client -------------------------------------------------------------------------------------------


class _ServerFrame(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class Accepted(_ServerFrame):
    type: Literal["accepted"] = "accepted"
    message_id: str = Field(alias="messageId")
    conversation_id: str = Field(alias="conversationId")


class Delta(_ServerFrame):
    type: Literal["delta"] = "delta"
    message_id: str = Field(alias="messageId")
    seq: int
    text: str


class ToolStatus(StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"


class ToolActivity(_ServerFrame):
    type: Literal["tool"] = "tool"
    message_id: str = Field(alias="messageId")
    name: str
    status: ToolStatus


class Usage(_ServerFrame):
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")


class Done(_ServerFrame):
    type: Literal["done"] = "done"
    message_id: str = Field(alias="messageId")
    conversation_id: str = Field(alias="conversationId")
    usage: Usage
    #: The model that wrote the reply; "offline-demo" marks the local stack's built-in model (not a language model).
    model: str | None = None


class Cancelled(_ServerFrame):
    type: Literal["cancelled"] = "cancelled"
    message_id: str = Field(alias="messageId")


class ErrorFrame(_ServerFrame):
    type: Literal["error"] = "error"
    message_id: str | None = Field(default=None, alias="messageId")
    code: ErrorCode
    message: str

    @classmethod
    def from_error(cls, error: AssistantError, *, message_id: str | None = None) -> ErrorFrame:
        return cls(message_id=message_id, code=error.code, message=error.public_message)


class ConversationFrame(_ServerFrame):
    type: Literal["conversation"] = "conversation"
    conversation_id: str = Field(alias="conversationId")


class ConversationSummary(_ServerFrame):
    conversation_id: str = Field(alias="conversationId")
    title: str
    updated_at: str = Field(alias="updatedAt")


class Conversations(_ServerFrame):
    type: Literal["conversations"] = "conversations"
    items: list[ConversationSummary]


class HistoryMessage(_ServerFrame):
    role: Literal["user", "assistant"]
    text: str
    message_id: str | None = Field(default=None, alias="messageId")


class History(_ServerFrame):
    type: Literal["history"] = "history"
    conversation_id: str = Field(alias="conversationId")
    messages: list[HistoryMessage]


class Pong(_ServerFrame):
    type: Literal["pong"] = "pong"


ServerFrame = (
    Accepted | Delta | ToolActivity | Done | Cancelled | ErrorFrame | ConversationFrame | Conversations | History | Pong
)


def route_response(frame: ServerFrame | None, status_code: int = 200) -> dict[str, Any]:
    """The Lambda proxy answer API Gateway turns into a frame for the sender (routes with a route response)."""
    if frame is None:
        return {"statusCode": status_code}
    return {"statusCode": status_code, "body": frame.to_json()}
