"""Every frame a client sends, and the table of actions (:data:`ACTION_TABLE`): which function answers each.

This is a contract (``docs/protocol.md``); clients depend on the field names. Client frames are validated with
pydantic so that bad input becomes a precise ``error`` frame. Server frames are in :mod:`assistant.protocol`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from assistant.environment import COMMANDS_FN, SEND_MESSAGE_FN, Env
from assistant.errors import BadRequest, TooLarge, UnknownAction
from assistant.resources import MAX_FRAME_BYTES

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


class ClientFrameModel(BaseModel):
    """A frame a client sends: one model per action (:data:`ACTION_TABLE`)."""

    # Unknown fields are ignored rather than rejected so older servers accept newer clients.
    model_config = ConfigDict(extra="ignore", frozen=True)

    action: str


@dataclass(frozen=True)
class ActionRoute:
    """Where an action goes: the function API Gateway routes it to, and the setting of its per-user bucket."""

    function: str
    rate_limit: Env


#: Attachments one message may carry.
MAX_ATTACHMENTS = 4
#: An upload's id: ``u_`` and 24 hex characters (:func:`new_id`).
UPLOAD_ID_PATTERN = r"^u_[0-9a-f]{24}$"
UploadId = Annotated[str, Field(pattern=UPLOAD_ID_PATTERN)]


class SendMessage(ClientFrameModel):
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


class RequestUpload(ClientFrameModel):
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


class GetAttachment(ClientFrameModel):
    """Ask for a short-lived link to one of your attachments: answered with ``attachment``."""

    action: Literal["getAttachment"]
    upload_id: UploadId = Field(alias="uploadId")


class Cancel(ClientFrameModel):
    action: Literal["cancel"]
    message_id: ClientId = Field(alias="messageId")


class NewConversation(ClientFrameModel):
    action: Literal["newConversation"]


class ListConversations(ClientFrameModel):
    action: Literal["listConversations"]
    #: The ``cursor`` of the previous ``conversations`` page: list the conversations after it (less recent).
    before: Cursor | None = None
    limit: int = Field(default=50, ge=1, le=MAX_CONVERSATIONS_PAGE)


class GetHistory(ClientFrameModel):
    action: Literal["getHistory"]
    conversation_id: ClientId = Field(alias="conversationId")
    #: The ``cursor`` of the previous ``history`` page: show the turns before it (older).
    before: Cursor | None = None
    #: Turns (each a user and an assistant message), newest first; fewer if they do not fit one WebSocket message.
    limit: int = Field(default=MAX_HISTORY_TURNS, ge=1, le=MAX_HISTORY_TURNS)


class Ping(ClientFrameModel):
    action: Literal["ping"]


class GetUsage(ClientFrameModel):
    action: Literal["getUsage"]


#: A title a user gives a conversation: 1-120 characters after trimming, on one line.
MAX_TITLE_CHARS = 120
#: Refused in a title: control characters (line breaks included), lone surrogates, noncharacters, and the
#: bidirectional overrides and isolates that would let a title display as something it is not.
_REFUSED_TITLE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


class RenameConversation(ClientFrameModel):
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


class DeleteConversation(ClientFrameModel):
    action: Literal["deleteConversation"]
    conversation_id: ClientId = Field(alias="conversationId")


class DeleteAllData(ClientFrameModel):
    action: Literal["deleteAllData"]


#: Every action a client may send, keyed by its frame's type: the function API Gateway routes it to and the per-user
#: bucket it is charged against. The action names, the frame union a route parses, the WebSocket routes
#: (``assistant.function_specs.ROUTES``) and the protocol's JSON Schema all come from this table; adding an action
#: is its frame model and its row here, its handler (``assistant.commands.COMMAND_HANDLERS`` or the
#: ``send_message`` function's), and its row in docs/protocol.md.
ACTION_TABLE: Final[Mapping[type[ClientFrameModel], ActionRoute]] = {
    SendMessage: ActionRoute(SEND_MESSAGE_FN, Env.RATE_LIMIT_SEND_MESSAGE),
    RequestUpload: ActionRoute(SEND_MESSAGE_FN, Env.RATE_LIMIT_REQUEST_UPLOAD),
    GetAttachment: ActionRoute(SEND_MESSAGE_FN, Env.RATE_LIMIT_GET_ATTACHMENT),
    Cancel: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_CANCEL),
    NewConversation: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_NEW_CONVERSATION),
    ListConversations: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_LIST_CONVERSATIONS),
    GetHistory: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_GET_HISTORY),
    Ping: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_PING),
    GetUsage: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_GET_USAGE),
    RenameConversation: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_RENAME_CONVERSATION),
    DeleteConversation: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_DELETE_CONVERSATION),
    DeleteAllData: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_DELETE_ALL_DATA),
}


def action_of(frame: type[ClientFrameModel]) -> str:
    """The ``action`` a frame model takes (its ``Literal``)."""
    (action,) = get_args(frame.model_fields["action"].annotation)
    return str(action)


#: Every action name, by frame type.
ACTION_NAMES: Final[Mapping[type[ClientFrameModel], str]] = {frame: action_of(frame) for frame in ACTION_TABLE}
ACTIONS: Final[frozenset[str]] = frozenset(ACTION_NAMES.values())


def frames_of(function: str) -> tuple[type[ClientFrameModel], ...]:
    """The frame types API Gateway routes to ``function`` (a ``FunctionSpec.name``)."""
    return tuple(frame for frame, route in ACTION_TABLE.items() if route.function == function)


def frame_union(frames: Iterable[type[ClientFrameModel]]) -> Any:
    """The discriminated union of ``frames``, which pydantic validates by ``action``."""
    return Annotated[Union[tuple(frames)], Field(discriminator="action")]  # noqa: UP007 (a runtime-built union)


if TYPE_CHECKING:
    #: Any client frame: to a type checker their common base class.
    ClientFrame: TypeAlias = ClientFrameModel
else:
    #: Any client frame: the discriminated union of every model of :data:`ACTION_TABLE`.
    ClientFrame = frame_union(ACTION_TABLE)
_CLIENT_FRAME: TypeAdapter[ClientFrameModel] = TypeAdapter(ClientFrame)


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
