"""What :class:`assistant.model.ModelClient` yields while a reply is produced.

Plain dataclasses, so the worker can consume a reply without importing ``openai`` or knowing its event types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ResponseStarted:
    """A model response exists server-side (one per round); the id is what a redelivered message resumes from."""

    response_id: str
    #: The model the server says is answering (its ``response.model``), where it names one: a reply stopped before
    #: it completed is recorded under this rather than under the model that was asked for.
    model: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RoundRestarted:
    """The model's stream dropped and its response could not be followed (a stateless server, or no background
    mode), so the round is being asked again from its start: the text yielded since this round's
    :class:`ResponseStarted` is void and the caller should discard what it showed of it."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolEvent:
    name: str
    status: Literal["started", "done", "failed"]


@dataclass(frozen=True)
class ToolExchange:
    """A tool call the model made and the output it was given. Yielded after the call's ``done``/``failed``
    :class:`ToolEvent`, kept with the turn, and sent with later turns, always as a pair (a server refuses a call
    without its output)."""

    call_id: str
    name: str
    arguments: str
    output: str


@dataclass(frozen=True)
class ReplyCompleted:
    """The reply is complete. Token counts are summed over every round of the reply (tool rounds included)."""

    response_id: str
    input_tokens: int
    output_tokens: int
    model: str


@dataclass(frozen=True)
class ResponseUsage:
    """What one model response cost, reported once it has ended, however it ended (completed, incomplete, failed,
    cancelled). ``estimated``: the provider did not say, so output tokens are estimated from the text that streamed
    (about four characters a token) and input tokens are unknown (0)."""

    response_id: str
    input_tokens: int
    output_tokens: int
    estimated: bool = False


#: Receives every :class:`ResponseUsage` of a reply, as it happens (also while the caller unwinds a cancel, which is
#: why it is a callback rather than an event: a closing generator cannot yield).
UsageSink = Callable[[ResponseUsage], None]

ModelEvent = ResponseStarted | TextDelta | ToolEvent | ToolExchange | ReplyCompleted | RoundRestarted
