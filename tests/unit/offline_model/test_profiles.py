"""The offline model tells the truth: what OpenAI refuses or does that breaks clients, through the real SDK.

Each test asserts the status and ``error.code`` a client would branch on, not only that something failed.
"""

from __future__ import annotations

import json
import time
import urllib.request
from types import ModuleType
from typing import Any

import pytest

from scripts.local_stack.offline_model import OfflineModelServer, Pace
from scripts.local_stack.offline_model.rules import known_create_parameters
from tests.unit.offline_model import CALC_TOOL


def refused(openai: ModuleType, call: Any, *args: Any, **params: Any) -> dict[str, Any]:
    """The error body of a call that must be a 400."""
    with pytest.raises(openai.BadRequestError) as raised:
        call(*args, **params)
    assert raised.value.status_code == 400
    body: dict[str, Any] = raised.value.body
    assert body["type"] == "invalid_request_error"
    return body


# --- Unfinished previous responses ------------------------------------------------------------------------------


def test_previous_response_id_of_a_running_response_is_refused(
    client: Any, openai: ModuleType, server: OfflineModelServer
) -> None:
    server.pace = Pace(first_token_s=30)
    running = client.responses.create(model="m", input="first", background=True)

    body = refused(openai, client.responses.create, model="m", input="next", previous_response_id=running.id)
    assert body["param"] == "previous_response_id"
    client.responses.cancel(running.id)


# --- Reasoning --------------------------------------------------------------------------------------------------


def test_a_reasoning_request_streams_a_reasoning_item_then_a_silence(client: Any, server: OfflineModelServer) -> None:
    request = urllib.request.Request(
        server.root_url + "/_control/pace", data=json.dumps({"reasoning_s": 0.3}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5):
        pass
    arrivals: list[tuple[float, Any]] = []
    started = time.monotonic()
    for event in client.responses.create(model="m", input="Hello", reasoning={"effort": "low"}, stream=True):
        arrivals.append((time.monotonic(), event))

    events = [event for _, event in arrivals]
    added, done = events[2], events[3]
    assert (added.type, done.type) == ("response.output_item.added", "response.output_item.done")
    assert added.item.type == done.item.type == "reasoning"
    assert added.item.id.startswith("rs_")
    assert added.item.summary == []
    # The silence sits between the reasoning item and everything after it: nothing after it arrives sooner.
    # (Measured from the request: when the SDK hands over the item itself depends on how the bytes were chunked.)
    assert arrivals[3][0] - started >= 0.3
    first_delta = next(i for i, e in enumerate(events) if e.type == "response.output_text.delta")
    assert arrivals[first_delta][0] - started >= 0.3
    assert events[-1].response.output[1].type == "message"


def test_only_reasoning_requests_reason(client: Any) -> None:
    def output_types(**params: Any) -> list[str]:
        return [item.type for item in client.responses.create(input="Hello", **params).output]

    assert output_types(model="gpt-4.1") == ["message"]
    assert output_types(model="gpt-4.1", reasoning={"effort": "low"}) == ["reasoning", "message"]
    # A reasoning family reasons unasked, as on OpenAI; effort "none" turns it off.
    assert output_types(model="gpt-5-mini") == ["reasoning", "message"]
    assert output_types(model="gpt-5-mini", reasoning={"effort": "none"}) == ["message"]
    assert output_types(model="gpt-5-chat-latest") == ["message"]


@pytest.mark.parametrize("name", ["temperature", "top_p"])
def test_sampling_parameters_are_refused_on_a_reasoning_request(client: Any, openai: ModuleType, name: str) -> None:
    body = refused(openai, client.responses.create, model="m", input="Hi", reasoning={"effort": "low"}, **{name: 0.5})
    assert body["code"] == "unsupported_parameter"
    assert body["param"] == name
    assert body["message"] == f"Unsupported parameter: '{name}' is not supported with this model."
    assert refused(openai, client.responses.create, model="gpt-5-mini", input="Hi", **{name: 0.5})["param"] == name
    assert client.responses.create(model="gpt-4.1", input="Hi", **{name: 0.5}).status == "completed"


# --- Parameters -------------------------------------------------------------------------------------------------


def test_unknown_parameters_are_refused(client: Any, openai: ModuleType) -> None:
    body = refused(openai, client.responses.create, model="m", input="Hi", extra_body={"temprature": 0.5})
    assert body == {
        "message": "Unknown parameter: 'temprature'.",
        "type": "invalid_request_error",
        "param": "temprature",
        "code": "unknown_parameter",
    }


def test_the_known_parameters_come_from_the_sdk() -> None:
    from openai.types.responses.response_create_params import ResponseCreateParamsBase

    known = known_create_parameters()
    assert set(ResponseCreateParamsBase.__optional_keys__) < known
    assert {"stream", "truncation", "reasoning", "conversation"} <= known


def test_everything_the_model_client_sends_is_accepted(client: Any) -> None:
    first = client.responses.create(
        model="gpt-5-mini",
        instructions="Be brief.",
        input="calculate 2+2",
        tools=[CALC_TOOL],
        tool_choice="auto",
        max_output_tokens=500,
        reasoning={"effort": "low"},
        truncation="auto",
        store=True,
        background=True,
        stream=False,
    )
    done = client.responses.retrieve(first.id)
    while done.status in ("queued", "in_progress"):
        time.sleep(0.01)
        done = client.responses.retrieve(first.id)
    [call] = [item for item in done.output if item.type == "function_call"]
    with client.responses.create(
        model="gpt-4.1",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "4"}],
        previous_response_id=done.id,
        tools=[CALC_TOOL],
        tool_choice="none",
        temperature=0.2,
        truncation="auto",
        store=True,
        stream=True,
    ) as stream:
        events = list(stream)
    final = events[-1].response
    assert final.status == "completed"
    assert (final.truncation, final.temperature, final.previous_response_id) == ("auto", 0.2, done.id)


def test_the_stateless_profile_ignores_unknown_parameters_and_keeps_its_refusals(openai: ModuleType) -> None:
    with OfflineModelServer(pace=Pace.instant(), profile="stateless") as stateless:
        client = openai.OpenAI(base_url=stateless.base_url, api_key="test", max_retries=0, timeout=10)
        assert client.responses.create(model="m", input="Hi", extra_body={"chat_template": "x"}).status == "completed"
        assert refused(openai, client.responses.create, model="m", input="Hi", store=True)["param"] == "store"
        with pytest.raises(openai.NotFoundError):
            client.conversations.create()


# --- Tool calls -------------------------------------------------------------------------------------------------


def test_a_turn_that_leaves_a_function_call_unanswered_is_refused(client: Any, openai: ModuleType) -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "calculate", "arguments": "{}"}
    body = refused(openai, client.responses.create, model="m", input=[{"role": "user", "content": "2+2?"}, call])
    assert body["message"] == "No tool output found for function call call_1."
    assert body["param"] == "input"

    asked = client.responses.create(model="m", input="calculate 2+2", tools=[CALC_TOOL])
    [pending] = [item for item in asked.output if item.type == "function_call"]
    body = refused(openai, client.responses.create, model="m", input="never mind", previous_response_id=asked.id)
    assert body["message"] == f"No tool output found for function call {pending.call_id}."


def test_function_call_arguments_done_names_the_function(client: Any) -> None:
    events = list(client.responses.create(model="m", input="calculate 2+2", tools=[CALC_TOOL], stream=True))
    [done] = [event for event in events if event.type == "response.function_call_arguments.done"]
    [item] = [event.item for event in events if event.type == "response.output_item.done"]
    assert done.name == "calculate"  # an extra field to this SDK's type, present on the wire
    assert (done.item_id, done.output_index, done.arguments) == (item.id, 0, item.arguments)
    assert done.sequence_number == events.index(done)


# --- Re-streaming -----------------------------------------------------------------------------------------------


def test_only_a_background_response_can_be_streamed_again(client: Any, openai: ModuleType) -> None:
    plain = client.responses.create(model="m", input="Hi")
    body = refused(openai, client.responses.retrieve, plain.id, stream=True, starting_after=0)
    assert "background" in body["message"]

    background = client.responses.create(model="m", input="Hi", background=True)
    assert list(client.responses.retrieve(background.id, stream=True))[-1].type == "response.completed"


# --- The stateless profile: what self-hosted servers ignore and refuse -----------------------------------------


def test_stateless_refuses_reasoning_for_a_model_that_does_not_think(openai: ModuleType) -> None:
    """Ollama answers 400 `"<model>" does not support thinking` (ollama server/routes.go)."""
    with OfflineModelServer(pace=Pace.instant(), profile="stateless") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        body = refused(openai, client.responses.create, model="llama3.2", input="Hi", reasoning={"effort": "low"})
        assert body["param"] == "reasoning"
        assert "does not support thinking" in body["message"]
        thinking = client.responses.create(model="qwen3:8b", input="Hi", reasoning={"effort": "low"})
        assert thinking.status == "completed"


def test_stateless_ignores_tool_choice_none(openai: ModuleType) -> None:
    """Ollama's Responses API takes `tools` but not `tool_choice`: a model offered a tool may call it even with
    `tool_choice: "none"`, so a client that needs no more calls must offer no tools (assistant.model does)."""
    with OfflineModelServer(pace=Pace.instant(), profile="stateless") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        ignored = client.responses.create(model="m", input="calculate 2+2", tools=[CALC_TOOL], tool_choice="none")
        assert [item.type for item in ignored.output] == ["function_call"]
    with OfflineModelServer(pace=Pace.instant(), profile="openai") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        honoured = client.responses.create(model="m", input="calculate 2+2", tools=[CALC_TOOL], tool_choice="none")
        assert [item.type for item in honoured.output] == ["message"]
