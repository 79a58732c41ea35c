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

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from assistant.errors import AssistantError, BadRequest, ErrorCode, RateLimited, TooLarge, UnknownAction
from assistant.wiring import MAX_FRAME_BYTES

#: Ids a client may choose: short, URL- and key-safe, so they can be used in DynamoDB keys and SQS dedup ids.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

ClientId = Annotated[str, Field(pattern=ID_PATTERN)]
#: Where a page of ``history`` or ``conversations`` ends: ``<ISO-8601 UTC time>#<id>``, as the server gave it.
CURSOR_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,15}Z#[A-Za-z0-9_-]{1,64}$"
Cursor = Annotated[str, Field(pattern=CURSOR_PATTERN)]
#: The most turns one ``history`` page shows, and conversations one ``conversations`` page lists.
MAX_HISTORY_TURNS = 200
MAX_CONVERSATIONS_PAGE = 100


def new_id(prefix: str) -> str:
    """A server-assigned id: ``prefix`` + 24 hex chars (fits :data:`ID_PATTERN`)."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# --- Client -> server -------------------------------------------------------------------------------------------


class _ClientFrame(BaseModel):
    # Unknown fields are ignored rather than rejected so older servers accept newer clients.
    model_config = ConfigDict(extra="ignore", frozen=True)


#: Attachments one message may carry.
MAX_ATTACHMENTS = 4
#: An upload's id: ``u_`` and 24 hex characters (:func:`new_id`).
UPLOAD_ID_PATTERN = r"^u_[0-9a-f]{24}$"
UploadId = Annotated[str, Field(pattern=UPLOAD_ID_PATTERN)]


class SendMessage(_ClientFrame):
    action: Literal["sendMessage"]
    #: May be blank only when the message has attachments.
    message: str
    message_id: ClientId | None = Field(default=None, alias="messageId")
    conversation_id: ClientId | None = Field(default=None, alias="conversationId")
    #: Uploads (``requestUpload``) to send with the message, at most 4, each once.
    attachments: list[UploadId] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @model_validator(mode="after")
    def _not_blank(self) -> SendMessage:
        if not self.message.strip() and not self.attachments:
            raise ValueError("message must not be blank")
        if len(set(self.attachments)) != len(self.attachments):
            raise ValueError("an upload may be attached once per message")
        return self


#: A file name as the user's system gave it: 1-255 characters, no control or bidi formatting characters.
MAX_FILE_NAME_CHARS = 255


class RequestUpload(_ClientFrame):
    """Ask to upload one file: answered with ``upload``, a presigned POST fixed to this exact type and size."""

    action: Literal["requestUpload"]
    file_name: str = Field(alias="fileName", min_length=1, max_length=MAX_FILE_NAME_CHARS)
    #: ``image/png``, ``image/jpeg``, ``image/webp``, ``image/gif`` or ``application/pdf``.
    content_type: str = Field(alias="contentType", max_length=100)
    #: The file's exact size in bytes: the upload is refused by S3 unless it is exactly this.
    size: int = Field(ge=1)

    @field_validator("file_name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        refused = _REFUSED_TITLE_CHARS.search(value)
        if refused is not None:
            raise ValueError(f"fileName must not contain U+{ord(refused.group()):04X}")
        if not value.strip():
            raise ValueError("fileName must not be blank")
        return value


class GetAttachment(_ClientFrame):
    """Ask for a short-lived link to one of your attachments: answered with ``attachment``."""

    action: Literal["getAttachment"]
    upload_id: UploadId = Field(alias="uploadId")


class Cancel(_ClientFrame):
    action: Literal["cancel"]
    message_id: ClientId = Field(alias="messageId")


class NewConversation(_ClientFrame):
    action: Literal["newConversation"]


class ListConversations(_ClientFrame):
    action: Literal["listConversations"]
    #: The ``cursor`` of the previous ``conversations`` page: list the conversations after it (less recent).
    before: Cursor | None = None
    limit: int = Field(default=50, ge=1, le=MAX_CONVERSATIONS_PAGE)


class GetHistory(_ClientFrame):
    action: Literal["getHistory"]
    conversation_id: ClientId = Field(alias="conversationId")
    #: The ``cursor`` of the previous ``history`` page: show the turns before it (older).
    before: Cursor | None = None
    #: Turns (each a user and an assistant message), newest first; fewer if they do not fit one WebSocket message.
    limit: int = Field(default=MAX_HISTORY_TURNS, ge=1, le=MAX_HISTORY_TURNS)


class Ping(_ClientFrame):
    action: Literal["ping"]


class GetUsage(_ClientFrame):
    action: Literal["getUsage"]


#: A title a user gives a conversation: 1-120 characters after trimming, on one line.
MAX_TITLE_CHARS = 120
#: Refused in a title: control characters (line breaks included), lone surrogates, noncharacters, and the
#: bidirectional overrides and isolates that would let a title display as something it is not.
_REFUSED_TITLE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


class RenameConversation(_ClientFrame):
    action: Literal["renameConversation"]
    conversation_id: ClientId = Field(alias="conversationId")
    #: Trimmed; 1-120 characters; control characters refused.
    title: str

    @field_validator("title")
    @classmethod
    def _one_clean_line(cls, value: str) -> str:
        refused = _REFUSED_TITLE_CHARS.search(value)
        if refused is not None:
            raise ValueError(f"title must not contain U+{ord(refused.group()):04X} (control or formatting characters)")
        value = value.strip()
        if not value:
            raise ValueError("title must not be blank")
        if len(value) > MAX_TITLE_CHARS:
            raise ValueError(f"title has {len(value)} characters; at most {MAX_TITLE_CHARS}")
        return value


class DeleteConversation(_ClientFrame):
    action: Literal["deleteConversation"]
    conversation_id: ClientId = Field(alias="conversationId")


class DeleteAllData(_ClientFrame):
    action: Literal["deleteAllData"]


ClientFrame = Annotated[
    SendMessage
    | Cancel
    | NewConversation
    | ListConversations
    | GetHistory
    | Ping
    | GetUsage
    | RenameConversation
    | DeleteConversation
    | DeleteAllData
    | RequestUpload
    | GetAttachment,
    Field(discriminator="action"),
]
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
ACTIONS: frozenset[str] = frozenset(
    {
        "sendMessage",
        "cancel",
        "newConversation",
        "listConversations",
        "getHistory",
        "ping",
        "getUsage",
        "renameConversation",
        "deleteConversation",
        "deleteAllData",
        "requestUpload",
        "getAttachment",
    }
)


#: A client frame is one WebSocket frame, which API Gateway caps at 32 KB; a message's text must fit in it.
MAX_CLIENT_FRAME_BYTES = MAX_FRAME_BYTES
#: Digits a JSON number may have. Python refuses to convert integers over 4300 digits (a ValueError deep in the
#: parser); no field of the protocol needs more than a handful.
_MAX_NUMBER_CHARS = 100
#: What SQS accepts in a message body (and so what a message's text may contain), minus Unicode's noncharacters.
_REFUSED_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(1, 17))
    + "]"
)


def _bounded_number(text: str) -> float | int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise BadRequest(f"A number in the frame has more than {_MAX_NUMBER_CHARS} characters.")
    return float(text) if any(c in text for c in ".eE") else int(text)


def _no_constant(name: str) -> Any:
    raise BadRequest(f"`{name}` is not valid JSON.")


def _load_json(body: str) -> Any:
    try:
        return json.loads(body, parse_int=_bounded_number, parse_float=_bounded_number, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise BadRequest("The frame is not valid JSON.") from None
    except RecursionError:
        raise BadRequest("The frame is nested too deeply.") from None


def parse_client_frame(body: str | None, *, max_message_chars: int) -> ClientFrame:
    """Parse one client frame, raising an :class:`AssistantError` with the protocol's code for bad input.

    Hostile but valid JSON (deep nesting, huge numbers, lone surrogates) is a ``bad_request`` like any other bad
    input, never an ``internal`` error: nothing downstream sees it.
    """
    if body is None or not body.strip():
        raise BadRequest("The frame is empty; send a JSON object with an `action`.")
    if len(body) > MAX_CLIENT_FRAME_BYTES or len(body.encode("utf-8", "surrogatepass")) > MAX_CLIENT_FRAME_BYTES:
        raise TooLarge(f"The frame is over {MAX_CLIENT_FRAME_BYTES} bytes, the size of one WebSocket frame.")
    raw = _load_json(body)
    if not isinstance(raw, dict):
        raise BadRequest("The frame must be a JSON object.")
    action = raw.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise UnknownAction(f"Unknown action {action!r}; expected one of {sorted(ACTIONS)}.")
    message = raw.get("message")
    if action == "sendMessage" and isinstance(message, str):
        if len(message) > max_message_chars:
            raise TooLarge(f"The message has {len(message)} characters; the limit is {max_message_chars}.")
        refused = _REFUSED_CHARS.search(message)
        if refused is not None:
            raise BadRequest(
                f"The message contains U+{ord(refused.group()):04X}, which is not a character that can be sent "
                "(control characters, lone surrogates and noncharacters are refused)."
            )
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
    client = TypeAdapter(ClientFrame).json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
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
