"""The ``commands`` function's frames: the actions on conversations, usage and the connection (``cancel``,
``newConversation``, ``listConversations``, ``getHistory``, ``ping``, ``getUsage``, ``renameConversation``,
``deleteConversation``, ``deleteAllData``) and their answers. See docs/protocol.md."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from assistant.client_frames import (
    MAX_CONVERSATIONS_PAGE,
    MAX_HISTORY_TURNS,
    ClientFrameModel,
    ClientId,
    Cursor,
    clean_name,
)
from assistant.reply_frames import Usage
from assistant.server_frames import ServerFrameModel


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


class RenameConversation(ClientFrameModel):
    action: Literal["renameConversation"]
    conversation_id: ClientId = Field(alias="conversationId")
    #: Trimmed; 1-120 characters; control characters refused.
    title: str

    @field_validator("title")
    @classmethod
    def _one_clean_line(cls, value: str) -> str:
        value = clean_name("title", value).strip()
        if len(value) > MAX_TITLE_CHARS:
            raise ValueError(f"title has {len(value)} characters; at most {MAX_TITLE_CHARS}")
        return value


class DeleteConversation(ClientFrameModel):
    action: Literal["deleteConversation"]
    conversation_id: ClientId = Field(alias="conversationId")


class DeleteAllData(ClientFrameModel):
    action: Literal["deleteAllData"]


class ConversationFrame(ServerFrameModel):
    type: Literal["conversation"] = "conversation"
    conversation_id: str = Field(alias="conversationId")


class ConversationSummary(ServerFrameModel):
    conversation_id: str = Field(alias="conversationId")
    title: str
    updated_at: str = Field(alias="updatedAt")


class Conversations(ServerFrameModel):
    type: Literal["conversations"] = "conversations"
    items: list[ConversationSummary]
    #: Present when there are more (less recent) conversations: send it as ``before`` for the next page.
    cursor: str | None = None


class HistoryTool(ServerFrameModel):
    """A tool the assistant ran during a reply shown in ``history``."""

    name: str
    status: Literal["done", "failed"]


class AttachmentInfo(ServerFrameModel):
    """An attachment of a message, as ``history`` shows it (``getAttachment`` gives a link to its content)."""

    upload_id: str = Field(alias="uploadId")
    file_name: str = Field(alias="fileName")
    content_type: str = Field(alias="contentType")
    size: int


class HistoryMessage(ServerFrameModel):
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


class History(ServerFrameModel):
    type: Literal["history"] = "history"
    conversation_id: str = Field(alias="conversationId")
    #: Oldest first: the newest page of turns, or the page before ``before``.
    messages: list[HistoryMessage]
    #: Present when older turns exist: send it as ``before`` for the page before this one.
    cursor: str | None = None


class ConversationUpdated(ServerFrameModel):
    """To every tab of the user: a conversation was renamed."""

    type: Literal["conversationUpdated"] = "conversationUpdated"
    conversation_id: str = Field(alias="conversationId")
    title: str


class ConversationDeleted(ServerFrameModel):
    """To every tab of the user: a conversation was deleted (it is ``not_found`` from now on)."""

    type: Literal["conversationDeleted"] = "conversationDeleted"
    conversation_id: str = Field(alias="conversationId")


class DataDeleted(ServerFrameModel):
    """To every tab of the user: every conversation of theirs is deleted (today's usage counters are kept)."""

    type: Literal["dataDeleted"] = "dataDeleted"


class Pong(ServerFrameModel):
    type: Literal["pong"] = "pong"


class DailyUsageFrame(ServerFrameModel):
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
