"""Property-based tests of the stream consumer: every valid way a Responses server may tell one response.

The model client is driven through the real ``openai`` SDK over HTTP against a scripted server on 127.0.0.1 that
plays back generated event streams. The variants come from what real servers do (docs/providers.md):

- OpenAI numbers every event (``sequence_number``), announces a call in ``response.output_item.added`` and
  ``.done``, streams its arguments, sends ``response.output_text.done`` and ``usage``;
- bridges in front of Chat Completions models (open-responses-server 0.4.1, read in its ``responses_service.py``
  and checked on the wire by tests/thirdparty) number nothing, send ``usage: null``, an empty first delta, a
  ``response.function_call_arguments.done`` with ``id`` instead of ``item_id`` and no ``name``, and name the call
  only in the completed response's ``output``;
- some servers send a text only in its ``.done`` event or only in the final ``output``.

Whatever the variant, the user must see the same text once, the same calls must run once, and the reply must
count tokens (> 0), estimated where the server reported none.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.definition import AssistantDefinition
from assistant.errors import ErrorCode, ModelFailed
from assistant.model import (
    ModelClient,
    ModelEvent,
    ModelTimeouts,
    ReplyCompleted,
    ResponseUsage,
    RetryPolicy,
    TextDelta,
    ToolExchange,
)
from assistant.token_estimates import request_tokens
from assistant.tools import ToolContext, default_registry
from assistant.wiring import ModelProvider
from tests.http_stub import StubRequest, http_stub

CONTEXT = ToolContext(user_id="user-1", conversation_id=None, message_id="msg-1")
DEFINITION = AssistantDefinition(
    name="Test assistant",
    model="some-model",
    instructions="Be brief. Use the calculate tool for arithmetic.",
    tools=("current_time", "calculate"),
    max_output_tokens=4000,
)


class ScriptedServer:
    """``POST /v1/responses`` answers with the next scripted event stream (``data:`` lines only, as bridges send
    them); every request body is kept."""

    def __init__(self) -> None:
        self.scripts: deque[list[dict[str, Any]]] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.base_url = ""
        self._stack = ExitStack()

    def _respond(self, request: StubRequest) -> None:
        self.bodies.append(request.json())
        if not self.scripts:
            request.error(500, "no scripted response left")
            return
        events = self.scripts.popleft()
        request.start(200, {"Content-Type": "text/event-stream", "Connection": "close"})
        request.write(b"".join(f"data: {json.dumps(event)}\n\n".encode() for event in events))

    def __enter__(self) -> ScriptedServer:
        self.base_url = self._stack.enter_context(http_stub(self._respond, methods=("POST",))) + "/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


def _client(server: ScriptedServer) -> ModelClient:
    return ModelClient.create(
        api_key="test-key",
        base_url=server.base_url,
        definition=DEFINITION,
        tools=default_registry(),
        timeouts=ModelTimeouts(connect_s=2, read_s=2, write_s=2, pool_s=2),
        retry=RetryPolicy(max_attempts=1),
        provider=ModelProvider.OPENAI_COMPATIBLE,
    )


# --- Generating the variants ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """How one server tells a response (each flag is something a real server does; see the module docstring)."""

    numbered: bool
    created: bool
    usage: bool
    empty_first_delta: bool
    #: How the text reaches the client: all in deltas, part in deltas and the rest in ``.done``, only in
    #: ``.done``, or only in the completed response's ``output``.
    text_delivery: str
    #: Where a call is announced besides the completed ``output`` (which may leave it out when streamed ones say
    #: everything).
    call_added: bool
    call_arg_deltas: bool
    call_args_done: str  # "none" | "openai" (item_id and name) | "bridge" (id, no name)
    call_item_done: bool
    calls_in_final_output: bool


dialects = st.builds(
    Dialect,
    numbered=st.booleans(),
    created=st.booleans(),
    usage=st.booleans(),
    empty_first_delta=st.booleans(),
    text_delivery=st.sampled_from(["deltas", "deltas_and_done", "done_only", "final_only"]),
    call_added=st.booleans(),
    call_arg_deltas=st.booleans(),
    call_args_done=st.sampled_from(["none", "openai", "bridge"]),
    call_item_done=st.booleans(),
    calls_in_final_output=st.booleans(),
)
words = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), min_size=1, max_size=12)
texts = st.lists(words, min_size=1, max_size=8)


def _valid_call(dialect: Dialect) -> Dialect:
    """A server names a call and gives its arguments somewhere, or it could not expect the call to run: a variant
    that does neither gets the completed response's ``output`` (where every server lists it in the end)."""
    named = dialect.call_added or dialect.call_item_done or dialect.call_args_done == "openai"
    argued = dialect.call_arg_deltas or dialect.call_args_done != "none" or dialect.call_item_done
    if dialect.calls_in_final_output or (named and argued):
        return dialect
    return Dialect(**{**dialect.__dict__, "calls_in_final_output": True})


def _script(
    dialect: Dialect, response_id: str, text_parts: list[str], call: tuple[str, str, str] | None
) -> list[dict[str, Any]]:
    """One response's events: a text reply (``text_parts``) or a function call (``call`` = id, name, args)."""
    events: list[dict[str, Any]] = []
    shell = {"id": response_id, "object": "response", "model": "some-model", "status": "in_progress", "output": []}
    if dialect.created:
        events.append({"type": "response.created", "response": shell})
        events.append({"type": "response.in_progress", "response": shell})
    output: list[dict[str, Any]] = []
    if call is None:
        text = "".join(text_parts)
        item_id = f"msg_{response_id}"
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        streamed = {
            "deltas": len(text_parts),
            "deltas_and_done": len(text_parts) // 2,
            "done_only": 0,
            "final_only": 0,
        }[dialect.text_delivery]
        if dialect.empty_first_delta and dialect.text_delivery != "final_only":
            events.append({"type": "response.output_text.delta", **where, "delta": "", "logprobs": []})
        for part in text_parts[:streamed]:
            events.append({"type": "response.output_text.delta", **where, "delta": part, "logprobs": []})
        if dialect.text_delivery in ("deltas", "deltas_and_done", "done_only"):
            events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
        content = [{"type": "output_text", "text": text, "annotations": []}]
        output.append(
            {"type": "message", "id": item_id, "role": "assistant", "status": "completed", "content": content}
        )
    else:
        call_id, name, arguments = call
        item_id = f"fc_{response_id}"
        item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "status": "completed"}
        if dialect.call_added:
            events.append({"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}})
        if dialect.call_arg_deltas:
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item_id,
                        "output_index": 0,
                        "delta": piece,
                    }
                )
        if dialect.call_args_done == "openai":
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": 0,
                    "name": name,
                    "arguments": arguments,
                }
            )
        elif dialect.call_args_done == "bridge":
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "id": call_id,
                    "output_index": 0,
                    "arguments": arguments,
                }
            )
        if dialect.call_item_done:
            events.append(
                {"type": "response.output_item.done", "output_index": 0, "item": {**item, "arguments": arguments}}
            )
        if dialect.calls_in_final_output:
            output.append({**item, "arguments": arguments})
    usage = {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150} if dialect.usage else None
    events.append(
        {"type": "response.completed", "response": {**shell, "status": "completed", "output": output, "usage": usage}}
    )
    if dialect.numbered:
        for number, event in enumerate(events):
            event["sequence_number"] = number
    return events


def _run(server: ScriptedServer, message: str) -> tuple[list[ModelEvent], list[ResponseUsage]]:
    usages: list[ResponseUsage] = []
    events = list(_client(server).stream_reply(text=message, context=CONTEXT, usage_sink=usages.append))
    return events, usages


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=dialects, second=dialects, text_parts=texts, a=st.integers(0, 999), b=st.integers(1, 999))
def test_a_tool_round_then_an_answer_is_seen_once_whatever_the_dialect(
    scripted: ScriptedServer, first: Dialect, second: Dialect, text_parts: list[str], a: int, b: int
) -> None:
    first = _valid_call(first)
    arguments = json.dumps({"expression": f"{a} + {b}"})
    scripted.scripts.clear()
    scripted.scripts.append(_script(first, "resp_1", [], ("call_1", "calculate", arguments)))
    scripted.scripts.append(_script(second, "resp_2", text_parts, None))

    events, usages = _run(scripted, f"calculate {a} + {b}")

    exchanges = [e for e in events if isinstance(e, ToolExchange)]
    assert [(e.name, json.loads(e.arguments)) for e in exchanges] == [("calculate", {"expression": f"{a} + {b}"})]
    assert str(a + b) in exchanges[0].output
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "".join(text_parts)
    completed = events[-1]
    assert isinstance(completed, ReplyCompleted)
    assert completed.input_tokens > 0
    assert completed.output_tokens > 0
    assert [u.estimated for u in usages] == [not first.usage, not second.usage]
    # The second request carries the call and its output under one call id: a server refuses a call without one.
    sent = scripted.bodies[-1]["input"]
    call_ids = {item["call_id"] for item in sent if item.get("type") in ("function_call", "function_call_output")}
    assert len(call_ids) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dialect=dialects, text_parts=texts)
def test_a_text_reply_is_seen_once_and_counted_whatever_the_dialect(
    scripted: ScriptedServer, dialect: Dialect, text_parts: list[str]
) -> None:
    scripted.scripts.clear()
    scripted.scripts.append(_script(dialect, "resp_1", text_parts, None))

    events, usages = _run(scripted, "Hello there")

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "".join(text_parts)
    assert not [e for e in events if isinstance(e, ToolExchange)]
    (usage,) = usages
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    if not dialect.usage:
        # Input from the request actually sent (instructions, message, tool specs).
        body = scripted.bodies[-1]
        sent_chars = len(body["instructions"]) + len("Hello there") + len(json.dumps(body["tools"]))
        assert usage.estimated
        assert usage.input_tokens == request_tokens(body["instructions"], body["input"], body["tools"])
        assert usage.input_tokens >= sent_chars // 5


def test_a_completion_with_neither_text_nor_a_call_is_an_error(scripted: ScriptedServer) -> None:
    """open-responses-server turns a failure inside its own stream handling into `response.completed` with an
    `error` and no output: the user gets `model_unavailable`, not a silent empty `done`."""
    shell = {"id": "resp_e", "object": "response", "model": "m", "status": "in_progress", "output": []}
    scripted.scripts.clear()
    scripted.scripts.append(
        [
            {"type": "response.created", "response": shell},
            {"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "delta": ""},
            {"type": "response.completed", "response": {**shell, "status": "completed", "error": {"message": "x"}}},
        ]
    )
    usages: list[ResponseUsage] = []
    with pytest.raises(ModelFailed) as failed:
        list(_client(scripted).stream_reply(text="Hi", context=CONTEXT, usage_sink=usages.append))
    assert failed.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert "empty answer" in failed.value.public_message
    assert [u.response_id for u in usages] == ["resp_e"]
    assert usages[0].input_tokens > 0
