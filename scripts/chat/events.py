"""The events :class:`~scripts.chat.session.ChatSession` and :class:`~scripts.chat.client.ChatClient` report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --- Events the session reports ---------------------------------------------------------------------------------

ReplyOutcome = Literal["done", "cancelled", "failed"]


@dataclass(frozen=True)
class ReplyAccepted:
    message_id: str
    conversation_id: str
    own: bool


@dataclass(frozen=True)
class TextReceived:
    """Reply text that is now in order: everything up to the highest ``seq`` without a gap before it."""

    message_id: str
    text: str
    own: bool


@dataclass(frozen=True)
class TextReset:
    """The server is generating the reply again from ``offset`` (its model stream dropped): the text shown from
    there on is void, and the reply's text continues with the next ``TextReceived``."""

    message_id: str
    offset: int
    own: bool


@dataclass(frozen=True)
class ToolUpdate:
    message_id: str
    name: str
    status: str
    own: bool


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ReplyFinished:
    message_id: str
    outcome: ReplyOutcome
    text: str
    own: bool
    conversation_id: str | None = None
    usage: Usage | None = None
    model: str | None = None
    #: Some ``delta`` frames never arrived (e.g. sent while this client was reconnecting); ``text`` has a hole.
    incomplete: bool = False
    #: Text that arrived after a missing frame and is released only now, when the reply is over.
    late_text: str = ""


@dataclass(frozen=True)
class ServerError:
    message_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class ConversationStarted:
    conversation_id: str


@dataclass(frozen=True)
class ConversationItem:
    conversation_id: str
    title: str
    updated_at: str


@dataclass(frozen=True)
class ConversationList:
    items: tuple[ConversationItem, ...]


@dataclass(frozen=True)
class HistoryMessage:
    role: str
    text: str
    message_id: str | None = None
    #: Assistant messages: ``done``, ``cancelled`` (stopped) or ``failed``.
    status: str | None = None
    #: User messages: the names of the files sent with it.
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class UploadGranted:
    """``upload``: where to POST the file (``fields`` first, then the file) to attach it as ``upload_id``."""

    upload_id: str
    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class HistoryReceived:
    conversation_id: str
    messages: tuple[HistoryMessage, ...]
    #: Present when older turns exist: ask again with it as ``before``.
    cursor: str | None = None


@dataclass(frozen=True)
class ConversationRenamed:
    conversation_id: str
    title: str


@dataclass(frozen=True)
class ConversationRemoved:
    """A conversation was deleted (in this tab or another)."""

    conversation_id: str


@dataclass(frozen=True)
class AllDataDeleted:
    pass


@dataclass(frozen=True)
class PongReceived:
    pass


@dataclass(frozen=True)
class ProtocolProblem:
    """A frame this client cannot read. Reported, never silently dropped."""

    detail: str


@dataclass(frozen=True)
class Connected:
    attempt: int


@dataclass(frozen=True)
class Disconnected:
    reason: str
    retry_in: float


@dataclass(frozen=True)
class Fatal:
    """The client gave up (e.g. the password is wrong); nothing more will arrive."""

    reason: str


ChatEvent = (
    ReplyAccepted
    | TextReceived
    | TextReset
    | ToolUpdate
    | ReplyFinished
    | ServerError
    | ConversationStarted
    | ConversationList
    | HistoryReceived
    | ConversationRenamed
    | ConversationRemoved
    | AllDataDeleted
    | PongReceived
    | UploadGranted
    | ProtocolProblem
    | Connected
    | Disconnected
    | Fatal
)
