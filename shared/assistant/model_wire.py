"""What one round of a reply sends, as the wire takes it: the conversation so far as input items, the request
body per provider profile, and the round after a tool round.

Plain dicts in the shapes of the ``openai`` SDK's param types (imported for type checking only): the body goes out
through the client's own ``post`` (``assistant.model_response``), without the SDK's ``maybe_transform`` walk, which
changes nothing for these bodies (tests/unit/test_model_client.py checks it against the installed SDK).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from assistant.definition import AssistantDefinition
from assistant.model_events import ToolExchange
from assistant.response_stream import Round
from assistant.tools.toolbox import OfferedTools
from assistant.wiring import ProviderCapabilities

if TYPE_CHECKING:
    from openai.types.responses import ResponseInputItemParam, ToolParam
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
    from openai.types.shared.reasoning_effort import ReasoningEffort

__all__ = [
    "FilePart",
    "HistoryItem",
    "PriorText",
    "Request",
    "UserMessageWithFiles",
    "call_item",
    "exchange_items",
    "first_request",
    "history_message",
    "next_request",
    "output_item",
    "request_body",
    "user_message",
]

#: An earlier message's text with its author (the user's message, or the assistant's reply), as the model is sent it.
PriorText = tuple[Literal["user", "assistant"], str]
#: A content part of a user message beyond its text: ``input_image`` or ``input_file`` (assistant.attachments).
FilePart = dict[str, object]


@dataclass(frozen=True)
class UserMessageWithFiles:
    """An earlier user message that carried attachments: its text and a content part per file."""

    text: str
    files: tuple[FilePart, ...]


#: What ``stream_reply`` is sent of the conversation so far, oldest first: messages, and tool exchanges (each call
#: with its output) where they happened.
HistoryItem = PriorText | ToolExchange | UserMessageWithFiles


@dataclass(frozen=True)
class Request:
    """What one round sends: its input items, and (``openai`` profile, tool rounds) the response it continues."""

    input: list[ResponseInputItemParam]
    previous_response_id: str | None = None
    #: Estimated tokens of the context the server already holds for ``previous_response_id`` (it counts them as
    #: input again): only used where the server reports no usage.
    carried_tokens: int = 0


def first_request(history: Sequence[HistoryItem], text: str, files: Sequence[FilePart] = ()) -> Request:
    """The first round of a reply: the conversation so far (oldest first), then the user's new message (with its
    attachments' parts after its text)."""
    items: list[ResponseInputItemParam] = []
    for past in history:
        if isinstance(past, ToolExchange):
            items.extend(exchange_items(past))
        elif isinstance(past, UserMessageWithFiles):
            items.append(user_message(past.text, past.files))
        elif past[1]:
            items.append(history_message(past[0], past[1]))
    items.append(user_message(text, files))
    return Request(items)


def user_message(text: str, files: Sequence[FilePart] = ()) -> ResponseInputItemParam:
    """A user message; with files, a list of content parts (``input_text`` first, as OpenAI's examples put it)."""
    if not files:
        return {"type": "message", "role": "user", "content": text}
    parts: list[dict[str, object]] = [{"type": "input_text", "text": text}] if text.strip() else []
    parts.extend(files)
    return cast("ResponseInputItemParam", {"type": "message", "role": "user", "content": parts})


def next_request(
    sent: Request, result: Round, outputs: list[ResponseInputItemParam], *, stored_responses: bool
) -> Request:
    """The input of the round after a tool round: the tool results, and what they answer.

    A server with stored responses continues the response by id (which keeps its reasoning items too); a
    stateless one is sent everything again: the earlier input, the calls and their outputs, each call with its
    output (a server refuses a call without one).
    """
    if stored_responses:
        return Request(outputs, previous_response_id=result.response_id, carried_tokens=result.context_tokens)
    calls = [call_item(call.call_id, call.name, call.arguments) for call in result.calls]
    return Request([*sent.input, *calls, *outputs])


def request_body(
    request: Request,
    offered: OfferedTools,
    *,
    allow_tools: bool,
    definition: AssistantDefinition,
    model: str,
    capabilities: ProviderCapabilities,
    background: bool,
) -> ResponseCreateParamsStreaming:
    """The ``POST /responses`` body of one round, as the wire takes it (only what is set is sent)."""
    body: ResponseCreateParamsStreaming = {
        "stream": True,
        "model": model,
        "instructions": definition.instructions,
        "input": request.input,
        "max_output_tokens": definition.max_output_tokens,
    }
    if background:
        body["background"] = True
    if request.previous_response_id:
        body["previous_response_id"] = request.previous_response_id
    # The specs have exactly the FunctionToolParam shape; the tools modules just don't import openai.
    tools: list[ToolParam] = offered.specs  # type: ignore[assignment]
    # The last permitted tool round forbids tools: with `tool_choice="none"` where the server honours it, else
    # by offering none (the earlier calls and their outputs stay in the input either way).
    if tools and (allow_tools or capabilities.tool_choice):
        body["tools"] = tools
        if not allow_tools:
            body["tool_choice"] = "none"
    if definition.temperature is not None:
        body["temperature"] = definition.temperature
    if definition.reasoning_effort and capabilities.reasoning:
        # The definition accepts only the SDK's own ReasoningEffort values (assistant.definition), hence the cast.
        body["reasoning"] = {"effort": cast("ReasoningEffort", definition.reasoning_effort)}
    if capabilities.truncation_auto:
        # Where the server can, it drops the oldest input itself should our own budget
        # (ModelClient.history_budget_chars) still overshoot the model's window, e.g. after a long tool exchange.
        body["truncation"] = "auto"
    if capabilities.stored_responses:
        # Background mode requires stored responses; recovery by id and previous_response_id need them in any
        # case. A stateless server is sent no `store` at all (some refuse `store=true`).
        body["store"] = True
    return body


def history_message(role: Literal["user", "assistant"], text: str) -> ResponseInputItemParam:
    """An earlier message as input. The model's own earlier reply goes as ``output_text`` parts, the form the API
    gives it in a response's ``output`` (OpenAI refuses ``input_text`` in an assistant message): some servers
    keep an assistant message only in that form (open-responses-server 0.4.1 drops one whose content is a string,
    tests/thirdparty), and every server this project runs against takes it."""
    if role == "assistant":
        return cast(
            "ResponseInputItemParam", {"type": "message", "role": "assistant", "content": [output_text_part(text)]}
        )
    return {"type": "message", "role": "user", "content": text}


def output_text_part(text: str) -> dict[str, object]:
    return {"type": "output_text", "text": text, "annotations": []}


def call_item(call_id: str, name: str, arguments: str) -> ResponseInputItemParam:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output_item(call_id: str, output: str) -> ResponseInputItemParam:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def exchange_items(exchange: ToolExchange) -> list[ResponseInputItemParam]:
    return [
        call_item(exchange.call_id, exchange.name, exchange.arguments),
        output_item(exchange.call_id, exchange.output),
    ]
