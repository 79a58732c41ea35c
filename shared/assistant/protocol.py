"""The WebSocket protocol: every frame the server sends, and where the client's are (:mod:`assistant.client_frames`).

This is a contract (``docs/protocol.md``); clients depend on the field names. Server frames are built from these
models so no handler can invent a shape of its own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# The client's frames and the table of actions, re-exported: most callers want both directions.
from assistant.client_frames import (
    ACTION_NAMES,
    ACTION_TABLE,
    ACTIONS,
    CURSOR_PATTERN,
    ID_PATTERN,
    MAX_ATTACHMENTS,
    MAX_CLIENT_FRAME_BYTES,
    MAX_CONVERSATIONS_PAGE,
    MAX_FILE_NAME_CHARS,
    MAX_HISTORY_TURNS,
    MAX_TITLE_CHARS,
    UPLOAD_ID_PATTERN,
    ActionRoute,
    Cancel,
    ClientFrame,
    ClientFrameModel,
    ClientId,
    Cursor,
    DeleteAllData,
    DeleteConversation,
    GetAttachment,
    GetHistory,
    GetUsage,
    ListConversations,
    NewConversation,
    Ping,
    RenameConversation,
    RequestUpload,
    SendMessage,
    UploadId,
    action_of,
    frame_union,
    frames_of,
    new_id,
    parse_client_frame,
)
from assistant.errors import AssistantError, ErrorCode, RateLimited

__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "ACTION_TABLE",
    "CURSOR_PATTERN",
    "ID_PATTERN",
    "MAX_ATTACHMENTS",
    "MAX_CLIENT_FRAME_BYTES",
    "MAX_CONVERSATIONS_PAGE",
    "MAX_FILE_NAME_CHARS",
    "MAX_HISTORY_TURNS",
    "MAX_TITLE_CHARS",
    "UPLOAD_ID_PATTERN",
    "ActionRoute",
    "Cancel",
    "ClientFrame",
    "ClientFrameModel",
    "ClientId",
    "Cursor",
    "DeleteAllData",
    "DeleteConversation",
    "GetAttachment",
    "GetHistory",
    "GetUsage",
    "ListConversations",
    "NewConversation",
    "Ping",
    "RenameConversation",
    "RequestUpload",
    "SendMessage",
    "UploadId",
    "action_of",
    "frame_union",
    "frames_of",
    "new_id",
    "parse_client_frame",
]


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
    #: Where ``text`` starts in the reply, in characters (UTF-16 code units are what JavaScript counts; the server
    #: counts Python characters, which agree for text without astral-plane characters split across frames, and
    #: frames never split a surrogate pair). Clients assemble a reply by offset: see docs/protocol.md.
    offset: int | None = None


class Reset(_ServerFrame):
    """The model's stream dropped and could not be followed, so the reply is being generated again from ``offset``:
    discard the message's text from ``offset`` on (usually 0: all of it). The ``delta`` frames that follow number
    their ``seq`` from 0 again and carry offsets from ``offset`` on. See docs/protocol.md."""

    type: Literal["reset"] = "reset"
    message_id: str = Field(alias="messageId")
    offset: int = 0


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
    #: With ``rate_limited``: how long to wait before sending that kind of frame again.
    retry_after_ms: int | None = Field(default=None, alias="retryAfterMs")

    @classmethod
    def from_error(cls, error: AssistantError, *, message_id: str | None = None) -> ErrorFrame:
        retry_after_ms = error.retry_after_ms if isinstance(error, RateLimited) else None
        return cls(message_id=message_id, code=error.code, message=error.public_message, retry_after_ms=retry_after_ms)


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
    #: Present when there are more (less recent) conversations: send it as ``before`` for the next page.
    cursor: str | None = None


class HistoryTool(_ServerFrame):
    """A tool the assistant ran during a reply shown in ``history``."""

    name: str
    status: Literal["done", "failed"]


class AttachmentInfo(_ServerFrame):
    """An attachment of a message, as ``history`` shows it (``getAttachment`` gives a link to its content)."""

    upload_id: str = Field(alias="uploadId")
    file_name: str = Field(alias="fileName")
    content_type: str = Field(alias="contentType")
    size: int


class HistoryMessage(_ServerFrame):
    role: Literal["user", "assistant"]
    text: str
    #: User messages: the files sent with it.
    attachments: list[AttachmentInfo] | None = None
    message_id: str | None = Field(default=None, alias="messageId")
    #: Assistant messages: how the reply ended. ``cancelled`` (stopped by the user: ``text`` is what was shown
    #: before the stop) and ``failed`` are as the live ``cancelled`` and ``error`` frames said.
    status: Literal["done", "cancelled", "failed"] | None = None
    #: Assistant messages: the model that wrote the reply, its tokens, the tools it ran (as the live frames said).
    model: str | None = None
    usage: Usage | None = None
    tools: list[HistoryTool] | None = None


class History(_ServerFrame):
    type: Literal["history"] = "history"
    conversation_id: str = Field(alias="conversationId")
    #: Oldest first: the newest page of turns, or the page before ``before``.
    messages: list[HistoryMessage]
    #: Present when older turns exist: send it as ``before`` for the page before this one.
    cursor: str | None = None


class ConversationUpdated(_ServerFrame):
    """To every tab of the user: a conversation was renamed."""

    type: Literal["conversationUpdated"] = "conversationUpdated"
    conversation_id: str = Field(alias="conversationId")
    title: str


class ConversationDeleted(_ServerFrame):
    """To every tab of the user: a conversation was deleted (it is ``not_found`` from now on)."""

    type: Literal["conversationDeleted"] = "conversationDeleted"
    conversation_id: str = Field(alias="conversationId")


class DataDeleted(_ServerFrame):
    """To every tab of the user: every conversation of theirs is deleted (today's usage counters are kept)."""

    type: Literal["dataDeleted"] = "dataDeleted"


class UploadFrame(_ServerFrame):
    """The answer to ``requestUpload``: POST ``fields`` and then the file (as the form's last field, ``file``) to
    ``url`` as ``multipart/form-data`` before ``expiresAt``; then send ``uploadId`` in ``sendMessage.attachments``."""

    type: Literal["upload"] = "upload"
    upload_id: str = Field(alias="uploadId")
    url: str
    fields: dict[str, str]
    #: ISO 8601 UTC.
    expires_at: str = Field(alias="expiresAt")


class AttachmentFrame(_ServerFrame):
    """The answer to ``getAttachment``: a short-lived link (minutes) to the file's content."""

    type: Literal["attachment"] = "attachment"
    upload_id: str = Field(alias="uploadId")
    url: str


class Pong(_ServerFrame):
    type: Literal["pong"] = "pong"


class DailyUsageFrame(_ServerFrame):
    """The answer to ``getUsage``: today's (UTC) counters and the quotas they are checked against."""

    type: Literal["usage"] = "usage"
    #: ``YYYY-MM-DD`` (UTC); counters reset at midnight UTC.
    day: str
    messages: int
    message_quota: int = Field(alias="messageQuota")
    input_tokens: int = Field(alias="inputTokens")
    input_token_quota: int = Field(alias="inputTokenQuota")
    output_tokens: int = Field(alias="outputTokens")
    output_token_quota: int = Field(alias="outputTokenQuota")
    #: When the counters reset, ISO 8601 UTC.
    resets_at: str = Field(alias="resetsAt")


ServerFrame = (
    Accepted
    | Delta
    | Reset
    | ToolActivity
    | Done
    | Cancelled
    | ErrorFrame
    | ConversationFrame
    | Conversations
    | History
    | Pong
    | DailyUsageFrame
    | ConversationUpdated
    | ConversationDeleted
    | DataDeleted
    | UploadFrame
    | AttachmentFrame
)


def route_response(frame: ServerFrame | None, status_code: int = 200) -> dict[str, Any]:
    """The Lambda proxy answer API Gateway turns into a frame for the sender (routes with a route response)."""
    if frame is None:
        return {"statusCode": status_code}
    return {"statusCode": status_code, "body": frame.to_json()}


# --- The JSON Schema ------------------------------------------------------------------------------------------

#: Where the generated schema lives; `python -m scripts.protocol_schema` writes it, a test fails when it is stale.
SCHEMA_ID = "urn:gpt-assistant:protocol"


def protocol_json_schema() -> dict[str, Any]:
    """The JSON Schema of every client and server frame, generated from the models above (the one source).

    ``clientFrame`` validates what a client may send (the models' validation rules), ``serverFrame`` what the
    server sends (as serialized: aliases, no nulls).
    """
    client = TypeAdapter(frame_union(ACTION_TABLE)).json_schema(
        by_alias=True, mode="validation", ref_template="#/$defs/{model}"
    )
    server = TypeAdapter(Annotated[ServerFrame, Field(discriminator="type")]).json_schema(
        by_alias=True, mode="serialization", ref_template="#/$defs/{model}"
    )
    definitions = {**client.pop("$defs", {}), **server.pop("$defs", {})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Serverless GPT assistant WebSocket protocol",
        "description": "Generated from shared/assistant/protocol.py; see docs/protocol.md. Do not edit by hand.",
        "oneOf": [{"$ref": "#/$defs/clientFrame"}, {"$ref": "#/$defs/serverFrame"}],
        "$defs": {"clientFrame": client, "serverFrame": server, **dict(sorted(definitions.items()))},
    }
