"""The frames of a reply as it streams to every tab of the user (the worker sends them; ``cancelled`` also comes from
the ``cancel`` command): text, tool activity, and how the reply ended. See docs/protocol.md."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from assistant.server_frames import ServerFrameModel


class Delta(ServerFrameModel):
    type: Literal["delta"] = "delta"
    message_id: str = Field(alias="messageId")
    seq: int
    text: str
    #: Where ``text`` starts in the reply, in characters (UTF-16 code units are what JavaScript counts; the server
    #: counts Python characters, which agree for text without astral-plane characters split across frames, and
    #: frames never split a surrogate pair). Clients assemble a reply by offset: see docs/protocol.md.
    offset: int | None = None


class Reset(ServerFrameModel):
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


class ToolActivity(ServerFrameModel):
    type: Literal["tool"] = "tool"
    message_id: str = Field(alias="messageId")
    name: str
    status: ToolStatus


class Usage(ServerFrameModel):
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")


class Done(ServerFrameModel):
    type: Literal["done"] = "done"
    message_id: str = Field(alias="messageId")
    conversation_id: str = Field(alias="conversationId")
    usage: Usage
    #: The model that wrote the reply; "offline-demo" marks the local stack's built-in model (not a language model).
    model: str | None = None


class Cancelled(ServerFrameModel):
    type: Literal["cancelled"] = "cancelled"
    message_id: str = Field(alias="messageId")
