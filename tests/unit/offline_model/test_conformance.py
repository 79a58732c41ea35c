"""Everything the offline model sends, checked against the ``openai`` SDK's own types in strict mode.

The SDK builds its objects without validating them (``construct``), so a field the offline model gets wrong would
pass unnoticed until a consumer reads it. Here each raw SSE event and each returned JSON object is captured as
bytes off the wire (``with_streaming_response`` / ``with_raw_response``: the SDK's request, our parsing) and
validated with ``strict=True``, in both profiles, across the paths a client takes: plain reply, tool calls,
reasoning, background with retrieve and resumed stream, cancel, an incomplete and a failed reply.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.local_stack.offline_model import Fault, OfflineModelServer, Pace, Profile
from tests.unit.offline_model import CALC_TOOL


@functools.cache
def _event_adapter() -> Any:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    # Built once: the SDK's event union has some sixty members.
    return TypeAdapter(ResponseStreamEvent)


@functools.cache
def _item_adapter() -> Any:
    from openai.types.conversations.conversation_item import ConversationItem
    from pydantic import TypeAdapter

    return TypeAdapter(ConversationItem)


def check_event(event: dict[str, Any]) -> None:
    _event_adapter().validate_python(event, strict=True)
    if event["type"] in ("response.created", "response.completed", "response.incomplete", "response.failed"):
        check_response(event["response"])


def check_response(obj: dict[str, Any]) -> None:
    from openai.types.responses import Response

    Response.model_validate(obj, strict=True)
    for item in obj["output"]:
        _item_adapter().validate_python(item, strict=True)


class Wire:
    """A real ``openai`` client whose every answer is also kept as the JSON that crossed the wire."""

    def __init__(self, server: OfflineModelServer) -> None:
        import openai

        self.client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=10)
        self.events: list[dict[str, Any]] = []
        self.objects: list[dict[str, Any]] = []

    def stream(self, **params: Any) -> list[dict[str, Any]]:
        with self.client.responses.with_streaming_response.create(stream=True, **params) as answer:
            return self._events(answer)

    def restream(self, response_id: str, starting_after: int) -> list[dict[str, Any]]:
        with self.client.responses.with_streaming_response.retrieve(
            response_id, stream=True, starting_after=starting_after
        ) as answer:
            return self._events(answer)

    def _events(self, answer: Any) -> list[dict[str, Any]]:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line.removeprefix("data: ")) for line in answer.iter_lines() if line.startswith("data:")]
        self.events.extend(events)
        return events

    def call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(method(*args, **kwargs).text)
        self.objects.append(obj)
        return obj


def _serve(profile: Profile) -> Iterator[Wire]:
    with OfflineModelServer(pace=Pace.instant(), profile=profile) as server:
        wire = Wire(server)
        wire.server = server  # type: ignore[attr-defined]
        yield wire
    # The point of the file: whatever a scenario produced is checked, event by event, object by object.
    assert wire.events or wire.objects
    for event in wire.events:
        check_event(event)
    for obj in wire.objects:
        if obj.get("object") == "response":
            check_response(obj)


@pytest.fixture(params=["openai", "stateless"])
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    yield from _serve(request.param)


@pytest.fixture
def openai_wire() -> Iterator[Wire]:
    yield from _serve("openai")


def test_the_checks_refuse_what_the_sdk_types_do_not_allow() -> None:
    from pydantic import ValidationError

    event = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0}
    good = {**event, "delta": "Hi", "logprobs": [], "sequence_number": 3}
    check_event(good)
    for bad in ({**good, "sequence_number": "3"}, {**good, "logprobs": None}, event):
        with pytest.raises(ValidationError):
            check_event(bad)


def test_plain_reply(wire: Wire) -> None:
    events = wire.stream(model="gpt-test", input="Hello there")
    assert events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    obj = wire.call(wire.client.responses.with_raw_response.create, model="gpt-test", input="Hello there")
    assert obj["status"] == "completed"


def test_reply_with_tool_calls(wire: Wire) -> None:
    events = wire.stream(model="gpt-test", input="calculate 2+2", tools=[CALC_TOOL])
    [call] = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert call["type"] == "function_call"
    [done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done["name"] == "calculate"
    answer = wire.stream(
        model="gpt-test",
        input=[
            {"role": "user", "content": "calculate 2+2"},
            {"type": "function_call", "call_id": call["call_id"], "name": call["name"], "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "4"},
        ],
        tools=[CALC_TOOL],
    )
    assert "4" in answer[-1]["response"]["output"][0]["content"][0]["text"]


def test_reasoning_request(wire: Wire) -> None:
    # A stateless (self-hosted) server takes `reasoning` only for a model that thinks (rules.py: Ollama's 400).
    thinking = "gpt-oss-20b" if wire.server.state.profile == "stateless" else "gpt-5-mini"  # type: ignore[attr-defined]
    events = wire.stream(model=thinking, input="Hello", reasoning={"effort": "low"}, max_output_tokens=500)
    reasoning = [e["item"] for e in events if e["type"].startswith("response.output_item.") and e["output_index"] == 0]
    assert [item["type"] for item in reasoning] == ["reasoning", "reasoning"]
    assert reasoning[0]["id"].startswith("rs_")
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert final["reasoning"]["effort"] == "low"


def test_an_incomplete_reply(wire: Wire) -> None:
    events = wire.stream(model="gpt-test", input="Tell me a long story about a dragon", max_output_tokens=16)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_failed_reply(wire: Wire) -> None:
    wire.server.faults.push(Fault.failed(after_deltas=2))  # type: ignore[attr-defined]
    events = wire.stream(model="gpt-test", input="Hello")
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_an_error_event(wire: Wire) -> None:
    wire.server.faults.push(Fault.error_event(after_deltas=1))  # type: ignore[attr-defined]
    events = wire.stream(model="gpt-test", input="Hello")
    assert events[-1]["type"] == "error"


# --- OpenAI only: stored responses, background mode -------------------------------------------------------------


def test_background_retrieve_and_resumed_stream(openai_wire: Wire) -> None:
    wire = openai_wire
    events = wire.stream(model="gpt-5-mini", input="Hello", background=True, reasoning={"effort": "low"})
    assert [e["type"] for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    response_id = events[0]["response"]["id"]
    stored = wire.call(wire.client.responses.with_raw_response.retrieve, response_id)
    assert stored["status"] == "completed"
    assert stored["background"] is True
    resumed = wire.restream(response_id, starting_after=4)
    assert resumed == events[5:]


def test_cancel(openai_wire: Wire) -> None:
    wire = openai_wire
    wire.server.pace = Pace(first_token_s=5.0)  # type: ignore[attr-defined]
    queued = wire.call(wire.client.responses.with_raw_response.create, model="gpt-test", input="Hi", background=True)
    cancelled = wire.call(wire.client.responses.with_raw_response.cancel, queued["id"])
    assert cancelled["status"] == "cancelled"
