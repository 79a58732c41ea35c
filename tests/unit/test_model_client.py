"""The model client, driven through the real ``openai`` SDK against the offline Responses API server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx2
import openai
import pytest

from assistant.definition import AssistantDefinition
from assistant.errors import ModelFailed, ModelIncomplete, ModelUnavailable, ReplyInterrupted
from assistant.model import (
    ModelClient,
    ModelEvent,
    ModelTimeouts,
    ReplyCompleted,
    ResponseStarted,
    ResponseUsage,
    RetryPolicy,
    RoundRestarted,
    StopReply,
    TextDelta,
    ToolEvent,
    ToolExchange,
)
from assistant.model_retry import retry_after_seconds
from assistant.tools import ToolContext, ToolRegistry, default_registry
from assistant.wiring import ModelProvider
from scripts.local_stack.offline_model import Fault, OfflineModelServer, Pace

REPO = Path(__file__).resolve().parents[2]
CONTEXT = ToolContext(user_id="user-1", conversation_id=None, message_id="msg-1")
LONG_MESSAGE = "tell me a long story about lighthouses"

DEFINITION = AssistantDefinition(
    name="Test assistant",
    model="gpt-5-mini",
    instructions="Be brief.",
    tools=("current_time", "calculate"),
    max_output_tokens=4000,
    reasoning_effort="low",
)
NOT_RESUMABLE = DEFINITION.model_copy(update={"resumable": False})


@pytest.fixture
def server() -> Iterator[OfflineModelServer]:
    with OfflineModelServer(pace=Pace.instant()) as running:
        yield running


@pytest.fixture
def delays() -> list[float]:
    return []


MakeClient = Callable[..., ModelClient]


@pytest.fixture
def make_client(server: OfflineModelServer, delays: list[float]) -> MakeClient:
    def make(**overrides: Any) -> ModelClient:
        options: dict[str, Any] = {
            "api_key": "test-key",
            "base_url": server.base_url,
            "definition": DEFINITION,
            "tools": default_registry(),
            "timeouts": ModelTimeouts(connect_s=2, read_s=2, write_s=2, pool_s=2),
            "sleep": delays.append,
            **overrides,
        }
        return ModelClient.create(**options)

    return make


def _posts(server: OfflineModelServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.method == "POST" and r.path == "/v1/responses"]


def _text(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def _stored_text(server: OfflineModelServer, response_id: str) -> str:
    response = server.state.responses[response_id].response
    return "".join(part["text"] for item in response["output"] if item["type"] == "message" for part in item["content"])


def _cancels(server: OfflineModelServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "POST" and r.path.endswith("/cancel")]


def _retrieves(server: OfflineModelServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "GET" and r.path.startswith("/v1/responses/")]


def _resumed_streams(server: OfflineModelServer) -> list[tuple[str, int | None]]:
    """The re-streams of stored responses: ``(response id, starting_after)`` of each."""
    resumed: list[tuple[str, int | None]] = []
    for path in _retrieves(server):
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        if query.get("stream") == ["true"]:
            after = query.get("starting_after")
            resumed.append((url.path.rsplit("/", 1)[-1], int(after[0]) if after else None))
    return resumed


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def _user_turns(server: OfflineModelServer) -> int:
    """Responses created to answer a user message: a second one for one reply would be a second turn."""
    return sum(
        1
        for run in server.state.responses.values()
        if run.context and run.context[-1]["type"] == "message" and run.context[-1]["role"] == "user"
    )


# --- Happy paths ------------------------------------------------------------------------------------------------


def test_streams_text_and_sends_the_definition(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()

    events = list(client.stream_reply(text="hello there", context=CONTEXT))

    started, *deltas, completed = events
    assert isinstance(started, ResponseStarted)
    assert started.model == "offline-demo"  # the server's response.model, known before the reply completes
    assert len(deltas) > 1
    assert all(isinstance(e, TextDelta) for e in deltas)
    assert _text(events) == _stored_text(server, started.response_id)
    assert isinstance(completed, ReplyCompleted)
    usage = server.state.responses[started.response_id].response["usage"]
    assert completed == ReplyCompleted(
        response_id=started.response_id,
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        model="offline-demo",
    )
    [body] = _posts(server)
    assert body["stream"] is True
    # Resumable (the default): a background response, which outlives a dropped stream or a dead worker.
    assert body["background"] is True
    assert server.state.responses[started.response_id].response["background"] is True
    assert body["store"] is True
    assert body["model"] == "gpt-5-mini"
    assert body["instructions"] == "Be brief."
    # The conversation is ours: no provider-side conversation, the input is the whole context.
    assert "conversation" not in body
    assert body["max_output_tokens"] == 4000
    assert body["reasoning"] == {"effort": "low"}
    assert body["input"] == [{"type": "message", "role": "user", "content": "hello there"}]
    assert [tool["name"] for tool in body["tools"]] == ["current_time", "calculate"]
    assert all(tool["strict"] is True for tool in body["tools"])
    assert "tool_choice" not in body


def test_model_override_replaces_the_definition_model(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client(model_override="gpt-5")

    list(client.stream_reply(text="hi", context=CONTEXT))

    assert _posts(server)[0]["model"] == "gpt-5"


def test_tool_round_trip_runs_the_tool_and_sums_usage(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()

    events = list(client.stream_reply(text="calculate 2+3*4", context=CONTEXT))

    tool_events = [e for e in events if isinstance(e, ToolEvent)]
    assert tool_events == [ToolEvent("calculate", "started"), ToolEvent("calculate", "done")]
    started = [e.response_id for e in events if isinstance(e, ResponseStarted)]
    assert len(started) == 2
    first, second = _posts(server)
    assert first["input"][0]["content"] == "calculate 2+3*4"
    [call] = [i for i in server.state.responses[started[0]].response["output"] if i["type"] == "function_call"]
    # Stored responses (the openai profile): the tool round continues the first response by id.
    assert "conversation" not in second
    assert second["previous_response_id"] == started[0]
    assert second["input"] == [{"type": "function_call_output", "call_id": call["call_id"], "output": "14"}]
    assert "14" in _text(events)
    completed = events[-1]
    assert isinstance(completed, ReplyCompleted)
    usages = [server.state.responses[rid].response["usage"] for rid in started]
    assert completed.response_id == started[1]
    assert completed.input_tokens == sum(u["input_tokens"] for u in usages)
    assert completed.output_tokens == sum(u["output_tokens"] for u in usages)
    assert _user_turns(server) == 1


def test_tool_gets_the_server_context(server: OfflineModelServer, make_client: MakeClient) -> None:
    registry = ToolRegistry()
    seen: list[tuple[str, str]] = []

    @registry.tool
    def current_time(timezone: str, context: ToolContext) -> str:
        """Current time (test double that records who asked)."""
        seen.append((timezone, context.user_id))
        return "12:00"

    definition = DEFINITION.model_copy(update={"tools": ("current_time",)})
    client = make_client(tools=registry, definition=definition)

    events = list(client.stream_reply(text="what time is it in Tokyo", context=CONTEXT))

    assert seen == [("Asia/Tokyo", "user-1")]
    assert [e for e in events if isinstance(e, ToolEvent)][-1] == ToolEvent("current_time", "done")
    assert "12:00" in _text(events)


def test_model_supplied_value_for_the_context_parameter_is_rejected(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    # The offline model always sends {"timezone": ...}; here `timezone` is the server's own parameter, so the
    # model is trying to set what the server sets (the original merged such arguments over its own).
    registry = ToolRegistry()
    calls: list[ToolContext] = []

    @registry.tool
    def current_time(timezone: ToolContext) -> str:
        """Time for the server-chosen zone."""
        calls.append(timezone)
        return "never"

    definition = DEFINITION.model_copy(update={"tools": ("current_time",)})
    client = make_client(tools=registry, definition=definition)

    events = list(client.stream_reply(text="what time is it in Tokyo", context=CONTEXT))

    assert calls == []
    assert [e for e in events if isinstance(e, ToolEvent)] == [
        ToolEvent("current_time", "started"),
        ToolEvent("current_time", "failed"),
    ]
    output = _posts(server)[1]["input"][0]["output"]
    assert "set by the server" in json.loads(output)["error"]
    assert isinstance(events[-1], ReplyCompleted)


def test_tool_rounds_are_bounded(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client(max_tool_rounds=0)

    with pytest.raises(ModelFailed):
        list(client.stream_reply(text="calculate 2+3*4", context=CONTEXT))
    assert len(_posts(server)) == 1


def test_last_permitted_tool_round_forbids_more_tools(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client(max_tool_rounds=1)

    events = list(client.stream_reply(text="calculate 2+3*4", context=CONTEXT))

    first, last = _posts(server)
    assert "tool_choice" not in first
    assert last["tool_choice"] == "none"
    assert isinstance(events[-1], ReplyCompleted)


def test_a_self_hosted_server_is_offered_no_tools_on_the_last_round_and_never_sent_reasoning(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    """Ollama ignores `tool_choice` (so "none" cannot stop a looping model) and refuses `reasoning` for a model
    that does not think: the stateless offline profile does both (rules.py), as the real server would."""
    server.state.profile = "stateless"
    client = make_client(definition=NOT_RESUMABLE, max_tool_rounds=1, provider=ModelProvider.OPENAI_COMPATIBLE)

    events = list(client.stream_reply(text="calculate 2+3*4", context=CONTEXT))

    first, last = _posts(server)
    assert [tool["name"] for tool in first["tools"]] == ["current_time", "calculate"]
    assert "tools" not in last
    assert "tool_choice" not in last
    assert "reasoning" not in first
    assert "reasoning" not in last
    assert isinstance(events[-1], ReplyCompleted)


def test_history_is_sent_before_the_new_message(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()
    history: list[tuple[Literal["user", "assistant"], str]] = [("user", "hello there"), ("assistant", "Hi!")]

    events = list(client.stream_reply(text="calculate 2+3*4", history=history, context=CONTEXT))

    first = _posts(server)[0]
    assert first["input"] == [
        {"type": "message", "role": "user", "content": "hello there"},
        # The model's own earlier reply in the form a response's output gives it (output_text parts).
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi!", "annotations": []}],
        },
        {"type": "message", "role": "user", "content": "calculate 2+3*4"},
    ]
    assert isinstance(events[-1], ReplyCompleted)


@pytest.mark.parametrize("profile", ["openai", "stateless"])
def test_request_bodies_are_what_the_sdks_create_would_send(
    profile: str, server: OfflineModelServer, make_client: MakeClient
) -> None:
    """The client posts its bodies without the SDK's ``maybe_transform`` walk (``ModelClient._request_body``): that
    is only right while the walk would change nothing in them. Checked against the installed SDK on bodies with
    every kind of item we send (history with a tool exchange, a tool round's outputs, tools, reasoning), so an SDK
    upgrade that starts transforming one of them fails here."""
    from openai._utils import maybe_transform
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming

    server.state.profile = "openai" if profile == "openai" else "stateless"
    provider = ModelProvider.OPENAI if profile == "openai" else ModelProvider.OPENAI_COMPATIBLE
    client = make_client(provider=provider)
    history: list[Any] = [
        ("user", "what is 1+1"),
        ToolExchange("call_0", "calculate", '{"expression": "1+1"}', "2"),
        ("assistant", "It is 2."),
    ]

    events = list(client.stream_reply(text="calculate 2+3*4", history=history, context=CONTEXT))

    assert isinstance(events[-1], ReplyCompleted)
    bodies = _posts(server)
    assert len(bodies) == 2  # the message, then the tool round
    assert any(item["type"] == "function_call_output" for body in bodies for item in body["input"])
    for body in bodies:
        assert maybe_transform(body, ResponseCreateParamsStreaming) == body


def test_stateless_provider_sends_no_state_and_resends_the_whole_input(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    server.state.profile = "stateless"
    client = make_client(provider=ModelProvider.OPENAI_COMPATIBLE)
    history: list[tuple[Literal["user", "assistant"], str]] = [("user", "hello there"), ("assistant", "Hi!")]

    events = list(client.stream_reply(text="calculate 2+3*4", history=history, context=CONTEXT))

    assert not client.resumable
    first, second = _posts(server)
    for body in (first, second):
        assert "background" not in body
        assert "store" not in body
        assert "previous_response_id" not in body
        assert "conversation" not in body
    call = second["input"][3]
    assert second["input"][:3] == first["input"]
    assert call["type"] == "function_call"
    assert call["name"] == "calculate"
    assert second["input"][4] == {"type": "function_call_output", "call_id": call["call_id"], "output": "14"}
    assert "14" in _text(events)
    with pytest.raises(ReplyInterrupted):
        list(client.resume_reply(response_id="resp_gone", context=CONTEXT))


# --- Retries before a response exists ---------------------------------------------------------------------------


def test_429_is_retried_with_jittered_exponential_backoff(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=8))
    server.faults.push(Fault.status(429), Fault.status(429), Fault.status(429))

    events = list(client.stream_reply(text="hello there", context=CONTEXT))

    assert isinstance(events[-1], ReplyCompleted)
    assert len(delays) == 3
    # Full jitter: each wait is somewhere in [0, base * 2**n].
    for retry, delay in enumerate(delays):
        assert 0 <= delay <= 0.5 * 2**retry
    assert len(_posts(server)) == 4
    assert _user_turns(server) == 1


def test_retry_after_is_honoured_and_capped(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=8))
    server.faults.push(Fault.status(429, retry_after=2), Fault.status(429, retry_after=120))

    list(client.stream_reply(text="hello there", context=CONTEXT))

    assert delays == [2.0, 8.0]


def test_5xx_until_retries_run_out_is_unavailable(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=3))
    server.faults.push(*[Fault.status(500)] * 3, Fault.status(503))
    events: list[ModelEvent] = []

    with pytest.raises(ModelUnavailable) as raised:
        events.extend(client.stream_reply(text="hello there", context=CONTEXT))

    assert raised.value.retryable
    assert events == []
    assert len(_posts(server)) == 3
    assert len(delays) == 2
    assert len(server.faults) == 1  # the fourth fault was never reached


def test_client_errors_are_not_retried(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client()
    server.faults.push(Fault.status(400))

    with pytest.raises(ModelFailed) as raised:
        list(client.stream_reply(text="hello there", context=CONTEXT))

    assert not raised.value.retryable
    assert len(_posts(server)) == 1
    assert delays == []


def test_slow_first_byte_times_out_and_is_retried(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(timeouts=ModelTimeouts(read_s=0.1))
    server.faults.push(Fault.stall(0.5))

    events = list(client.stream_reply(text="hello there", context=CONTEXT))

    assert isinstance(events[-1], ReplyCompleted)
    assert len(delays) == 1
    assert _user_turns(server) == 1


def test_stalling_every_time_is_unavailable(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(timeouts=ModelTimeouts(read_s=0.1), retry=RetryPolicy(max_attempts=2))
    server.faults.push(Fault.stall(0.5), Fault.stall(0.5))

    with pytest.raises(ModelUnavailable):
        list(client.stream_reply(text="hello there", context=CONTEXT))
    assert len(delays) == 1


def test_sdk_retries_are_off_even_for_a_client_built_elsewhere(server: OfflineModelServer, delays: list[float]) -> None:
    sdk = openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=5)
    client = ModelClient(sdk, DEFINITION, default_registry(), retry=RetryPolicy(max_attempts=1), sleep=delays.append)
    server.faults.push(Fault.status(500), Fault.status(500))

    with pytest.raises(ModelUnavailable):
        list(client.stream_reply(text="hello there", context=CONTEXT))
    assert len(_posts(server)) == 1
    assert delays == []


def test_openai_exceptions_never_escape(make_client: MakeClient) -> None:
    # Nothing listens on this port: a connection error, retried, then mapped.
    client = make_client(base_url="http://127.0.0.1:9/v1", retry=RetryPolicy(max_attempts=2))

    with pytest.raises(ModelUnavailable) as raised:
        list(client.stream_reply(text="hello", context=CONTEXT))
    assert not isinstance(raised.value, openai.OpenAIError)


# --- Failures the model reports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("after_deltas", [0, 3])
def test_error_event_is_model_failed(server: OfflineModelServer, make_client: MakeClient, after_deltas: int) -> None:
    client = make_client()
    server.faults.push(Fault.error_event("server_error", "boom", after_deltas=after_deltas))
    events: list[ModelEvent] = []

    with pytest.raises(ModelFailed):
        events.extend(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))

    # The response existed (response.created came first), so it is not retried: that could double the turn.
    assert len(_posts(server)) == 1
    assert sum(isinstance(e, TextDelta) for e in events) == after_deltas


def test_response_failed_is_model_failed(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()
    server.faults.push(Fault.failed(after_deltas=2))

    with pytest.raises(ModelFailed):
        list(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))
    assert len(_posts(server)) == 1


def test_incomplete_is_model_incomplete_with_reason(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()
    server.faults.push(Fault.incomplete("content_filter", after_deltas=2))

    with pytest.raises(ModelIncomplete) as raised:
        list(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))
    assert raised.value.reason == "content_filter"


# --- Recovery and resume ----------------------------------------------------------------------------------------


def test_stream_cut_mid_reply_is_recovered_with_the_full_text_exactly_once(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    client = make_client()
    server.faults.push(Fault.cut_after_deltas(5))

    events = list(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))

    [started] = [e for e in events if isinstance(e, ResponseStarted)]
    assert _text(events) == _stored_text(server, started.response_id)
    assert isinstance(events[-1], ReplyCompleted)
    assert len(_posts(server)) == 1
    # Resumed by stream right after the last event seen (created, in_progress, the reasoning item added and done,
    # the message item and its content part, five deltas: sequence numbers 0-10, and the cut comes after the
    # sixth delta), not by polling.
    assert _resumed_streams(server) == [(started.response_id, 11)]
    assert _user_turns(server) == 1


def test_resume_of_a_completed_response_sends_no_new_turn(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()
    original = list(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))
    completed = original[-1]
    assert isinstance(completed, ReplyCompleted)

    resumed = list(client.resume_reply(response_id=completed.response_id, context=CONTEXT))

    assert resumed[0] == ResponseStarted(completed.response_id)
    assert _text(resumed) == _text(original)
    assert resumed[-1] == completed
    assert len(_posts(server)) == 1


def test_resume_continues_a_tool_loop(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()
    # A worker that died right after the response started: it never reads (or closes) its stream again, and the
    # model finishes the response (a tool call) server-side.
    dead_worker = client.stream_reply(text="calculate 2+3*4", context=CONTEXT)
    started = next(dead_worker)
    assert isinstance(started, ResponseStarted)
    server_run = server.state.responses[started.response_id]

    resumed = list(client.resume_reply(response_id=started.response_id, context=CONTEXT))

    assert server_run.finished
    assert [e for e in resumed if isinstance(e, ToolEvent)] == [
        ToolEvent("calculate", "started"),
        ToolEvent("calculate", "done"),
    ]
    assert "14" in _text(resumed)
    assert isinstance(resumed[-1], ReplyCompleted)
    assert _user_turns(server) == 1


def test_resume_of_an_unknown_response_is_interrupted(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()

    with pytest.raises(ReplyInterrupted):
        list(client.resume_reply(response_id="resp_missing", context=CONTEXT))
    assert _posts(server) == []


def test_resume_of_a_failed_response_fails(server: OfflineModelServer, make_client: MakeClient) -> None:
    client = make_client()
    server.faults.push(Fault.failed())
    reply = client.stream_reply(text="hello there", context=CONTEXT)
    started = next(reply)
    assert isinstance(started, ResponseStarted)
    with pytest.raises(ModelFailed):
        list(reply)

    with pytest.raises(ModelFailed):
        list(client.resume_reply(response_id=started.response_id, context=CONTEXT))
    assert len(_posts(server)) == 1


def test_resume_waits_out_a_silence_longer_than_the_read_timeout(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    # A reasoning model may say nothing for longer than the client's read timeout; each timeout resumes the stream
    # where it was instead of giving up (the worker's deadline is what bounds a reply).
    server.pace = Pace(first_token_s=1.5, tokens_per_s=200)
    client = make_client(timeouts=ModelTimeouts(connect_s=2, read_s=0.4, write_s=2, pool_s=2))
    dead_worker = client.stream_reply(text="hello there", context=CONTEXT)
    started = next(dead_worker)
    assert isinstance(started, ResponseStarted)
    server.requests.clear()

    resumed = list(client.resume_reply(response_id=started.response_id, context=CONTEXT))

    assert _text(resumed) == _stored_text(server, started.response_id)
    assert isinstance(resumed[-1], ReplyCompleted)
    streams = _retrieves(server)
    assert len(streams) >= 3  # timed out at least twice during the silence
    assert all("stream=true" in path for path in streams)
    assert _posts(server) == []
    assert _cancels(server) == []
    dead_worker.close()


def test_a_silence_longer_than_max_silence_s_ends_the_reply_as_interrupted(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    server.pace = Pace(first_token_s=5, tokens_per_s=200)
    client = make_client(
        timeouts=ModelTimeouts(connect_s=2, read_s=0.3, write_s=2, pool_s=2),
        max_silence_s=1.0,
        retry=RetryPolicy(max_attempts=2),
    )

    with pytest.raises(ReplyInterrupted):
        list(client.stream_reply(text="hello there", context=CONTEXT))
    # Each timeout resumed the stream at once (silence is not a failure: no backoff) until the silence ran out.
    assert len(_resumed_streams(server)) >= 2
    assert delays == []


def test_a_stream_silent_past_the_read_timeout_resumes_after_the_last_event(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    server.pace = Pace(first_token_s=1.2, tokens_per_s=200)
    client = make_client(timeouts=ModelTimeouts(connect_s=2, read_s=0.5, write_s=2, pool_s=2))

    events = list(client.stream_reply(text="hello there", context=CONTEXT))

    [started] = [e for e in events if isinstance(e, ResponseStarted)]
    assert _text(events) == _stored_text(server, started.response_id)
    assert len(_posts(server)) == 1  # never asked again
    resumed = _resumed_streams(server)
    assert resumed
    assert {response_id for response_id, _ in resumed} == {started.response_id}
    # Every resume starts after the last event seen before the silence (nothing arrived in between).
    [after] = {after for _, after in resumed}
    assert after is not None
    assert after > 0


def test_without_resumable_a_dropped_stream_is_asked_again_and_the_caller_told_to_reset(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(definition=NOT_RESUMABLE)
    server.faults.push(Fault.cut_after_deltas(5))
    usages: list[ResponseUsage] = []

    events = list(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT, usage_sink=usages.append))

    first, second = _posts(server)
    assert "background" not in first
    assert first == second  # the same round, asked again from its start
    restart = events.index(RoundRestarted())
    assert sum(isinstance(e, TextDelta) for e in events[:restart]) == 5
    dropped, answered = (e.response_id for e in events if isinstance(e, ResponseStarted))
    # After the reset the caller has exactly one whole answer.
    assert _text(events[restart:]) == _stored_text(server, answered)
    assert isinstance(events[-1], ReplyCompleted)
    # Nothing to poll for: the server stopped the dropped response when its stream closed.
    assert _retrieves(server) == []
    run = server.state.responses[dropped]
    _wait_for(lambda: run.finished)
    assert run.response["status"] == "cancelled"
    # Both attempts are counted: what streamed of the dropped one was generated.
    assert [u.response_id for u in usages] == [dropped, answered]
    assert usages[0].estimated


def test_a_stream_that_keeps_dropping_is_interrupted_after_the_retry_budget(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(provider=ModelProvider.OPENAI_COMPATIBLE, retry=RetryPolicy(max_attempts=3))
    server.faults.push(*[Fault.cut_after_deltas(2)] * 3)
    events: list[ModelEvent] = []

    with pytest.raises(ReplyInterrupted):
        events.extend(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))

    assert len(_posts(server)) == 3
    assert events.count(RoundRestarted()) == 2


def test_without_resumable_resume_looks_once(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    client = make_client(definition=NOT_RESUMABLE)
    original = list(client.stream_reply(text="hello there", context=CONTEXT))
    completed = original[-1]
    assert isinstance(completed, ReplyCompleted)
    # A response that completed before its worker died is still picked up...
    resumed = list(client.resume_reply(response_id=completed.response_id, context=CONTEXT))
    assert resumed == [ResponseStarted(completed.response_id), TextDelta(_text(original)), completed]

    # ...but one still running is not waited for (nor can it be re-streamed: it is not a background response).
    server.pace = Pace(first_token_s=30, tokens_per_s=1)
    dead_worker = client.stream_reply(text="hello again", context=CONTEXT)
    started = next(dead_worker)
    assert isinstance(started, ResponseStarted)
    server.requests.clear()

    with pytest.raises(ReplyInterrupted):
        list(client.resume_reply(response_id=started.response_id, context=CONTEXT))
    assert _retrieves(server) == [f"/v1/responses/{started.response_id}"]
    assert delays == []
    dead_worker.close()
    assert _cancels(server) == []  # not a background response: closing its stream is what stops it


# --- Cancellation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resumable", [True, False])
def test_closing_the_iterator_stops_the_response(
    server: OfflineModelServer, delays: list[float], resumable: bool
) -> None:
    server.pace = Pace(first_token_s=0, tokens_per_s=50)
    responses: list[httpx2.Response] = []
    http_client = httpx2.Client(event_hooks={"response": [responses.append]})
    sdk = openai.OpenAI(api_key="test-key", base_url=server.base_url, http_client=http_client)
    definition = DEFINITION if resumable else NOT_RESUMABLE
    client = ModelClient(sdk, definition, default_registry(), sleep=delays.append)

    reply = client.stream_reply(text=LONG_MESSAGE, context=CONTEXT)
    started = next(reply)
    assert isinstance(started, ResponseStarted)
    assert isinstance(next(reply), TextDelta)
    stream_response = next(r for r in responses if r.request.url.path == "/v1/responses")
    assert not stream_response.is_closed
    run = server.state.responses[started.response_id]

    reply.close()

    assert stream_response.is_closed
    if resumable:
        # Closing the stream does not stop a background response: the client cancels it, once, before close()
        # returns.
        assert _cancels(server) == [f"/v1/responses/{started.response_id}/cancel"]
        assert run.response["status"] == "cancelled"
    else:
        # Closing the stream is what stops a normal response; there is nothing to cancel.
        _wait_for(lambda: run.finished)
        assert _cancels(server) == []
        assert run.response["status"] == "cancelled"
    assert len(_stored_text(server, started.response_id).split()) < 100  # stopped early, not run to its end
    http_client.close()


def test_closing_in_a_later_round_cancels_that_rounds_response(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    client = make_client()
    reply = client.stream_reply(text="calculate 2+3*4", context=CONTEXT)
    rounds: list[str] = []
    for event in reply:
        if isinstance(event, ResponseStarted):
            rounds.append(event.response_id)
            if len(rounds) == 2:
                break
    reply.close()

    assert _cancels(server) == [f"/v1/responses/{rounds[1]}/cancel"]


@pytest.mark.parametrize("stop_after", ["tool_started", "tool_done", "completed"])
def test_closing_after_a_round_completed_cancels_nothing(
    server: OfflineModelServer, make_client: MakeClient, stop_after: str
) -> None:
    client = make_client()
    stop_at: dict[str, Callable[[ModelEvent], bool]] = {
        "tool_started": lambda e: e == ToolEvent("calculate", "started"),
        "tool_done": lambda e: e == ToolEvent("calculate", "done"),
        "completed": lambda e: isinstance(e, ReplyCompleted),
    }
    reply = client.stream_reply(text="calculate 2+3*4", context=CONTEXT)
    for event in reply:
        if stop_at[stop_after](event):
            break

    reply.close()

    assert _cancels(server) == []
    assert all(run.response["status"] == "completed" for run in server.state.responses.values())


def _close_while_unwinding(reply: Generator[ModelEvent, None, None], exc: BaseException) -> None:
    """Close the reply in a ``finally`` while ``exc`` propagates, as the worker does."""
    try:
        raise exc
    finally:
        reply.close()


class _UserPressedStop(StopReply):
    """What a caller raises to stop a reply on purpose."""


@pytest.mark.parametrize("unwinding", [_UserPressedStop(), KeyboardInterrupt()], ids=["StopReply", "interrupt"])
def test_closing_while_stopping_on_purpose_cancels(
    server: OfflineModelServer, make_client: MakeClient, unwinding: BaseException
) -> None:
    server.pace = Pace(first_token_s=0, tokens_per_s=50)
    client = make_client()
    reply = client.stream_reply(text=LONG_MESSAGE, context=CONTEXT)
    started = next(reply)
    assert isinstance(started, ResponseStarted)

    with pytest.raises(type(unwinding)):
        _close_while_unwinding(reply, unwinding)

    assert _cancels(server) == [f"/v1/responses/{started.response_id}/cancel"]
    assert server.state.responses[started.response_id].response["status"] == "cancelled"


def test_closing_while_the_caller_fails_leaves_the_response_running(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    # What the worker does when posting a frame fails: its `finally` closes the reply while the error propagates,
    # and SQS redelivers the message, whose resume must find the very same response still generating.
    server.pace = Pace(first_token_s=0, tokens_per_s=200)
    client = make_client()
    reply = client.stream_reply(text=LONG_MESSAGE, context=CONTEXT)
    started = next(reply)
    assert isinstance(started, ResponseStarted)
    assert isinstance(next(reply), TextDelta)

    with pytest.raises(RuntimeError, match="push failed"):
        _close_while_unwinding(reply, RuntimeError("push failed"))

    assert _cancels(server) == []
    assert not server.state.responses[started.response_id].finished
    server.pace = Pace.instant()
    resumed = list(client.resume_reply(response_id=started.response_id, context=CONTEXT))
    assert _text(resumed) == _stored_text(server, started.response_id)
    assert len(_text(resumed).split()) > 300
    assert _user_turns(server) == 1


def test_a_failed_cancel_is_logged_not_raised(
    server: OfflineModelServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.pace = Pace(first_token_s=30, tokens_per_s=1)
    client = make_client()
    reply = client.stream_reply(text="hello there", context=CONTEXT)
    started = next(reply)
    assert isinstance(started, ResponseStarted)
    run = server.state.responses.pop(started.response_id)  # the cancel call will find nothing: 404

    with caplog.at_level(logging.WARNING, logger="assistant.model"):
        reply.close()

    assert _cancels(server) == [f"/v1/responses/{started.response_id}/cancel"]  # once: no retries
    [record] = [r for r in caplog.records if "cancel" in r.getMessage()]
    assert record.response_id == started.response_id  # type: ignore[attr-defined]
    assert record.status == 404  # type: ignore[attr-defined]
    assert not run.finished  # nobody stopped it: it would run to its end


# --- Pieces -----------------------------------------------------------------------------------------------------


def test_backoff_is_full_jitter_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=8)

    assert [policy.delay(n, rng=lambda: 1.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert policy.delay(3, rng=lambda: 0.0) == 0
    assert policy.delay(0, retry_after=3.5) == 3.5
    assert policy.delay(0, retry_after=100) == 8


def test_retry_after_headers() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "2"}) == 2
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=lambda: 1445412480.0) == 10
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_importing_the_model_module_does_not_import_openai() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
    code = "import sys; import assistant.model; assert 'openai' not in sys.modules; assert 'httpx2' not in sys.modules"

    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr


def test_the_history_budget_is_the_definitions_input_budget_less_instructions_and_message(
    make_client: MakeClient,
) -> None:
    client = make_client(definition=DEFINITION.model_copy(update={"input_budget_tokens": 1_000}))
    assert client.history_budget_chars("x" * 100) == 1_000 * 4 - len(DEFINITION.instructions) - 100
    assert client.history_budget_chars("x" * 10_000) == 0


# --- Faults of the real API that must not break the next message ------------------------------------------------


def test_after_a_lost_cancel_race_the_next_message_is_answered_while_the_old_response_runs_on(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    """A Stop whose cancel lost the race, or a reply abandoned after ``ReplyInterrupted``, leaves its response
    running. With OpenAI's Conversations API the user's next message would be refused (``conversation_locked``);
    our conversation is our own, so it is answered."""
    server.pace = Pace(first_token_s=0, tokens_per_s=60)
    client = make_client()
    abandoned = client.stream_reply(text=LONG_MESSAGE, context=CONTEXT)
    started = next(abandoned)
    assert isinstance(started, ResponseStarted)
    old = server.state.responses[started.response_id]

    events = list(client.stream_reply(text="next question", history=[("user", LONG_MESSAGE)], context=CONTEXT))

    assert isinstance(events[-1], ReplyCompleted)
    assert not old.finished  # answered while the abandoned response still ran
    assert all("conversation" not in body for body in _posts(server)[:1] + _posts(server)[-1:])
    abandoned.close()


def test_a_reply_stopped_during_a_tool_round_leaves_nothing_that_breaks_the_next_message(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    """The offline model refuses a function call sent without its output, as OpenAI does ("No tool output found"):
    the next turn carries the stopped one as the text the user saw, never a dangling call."""
    client = make_client()
    reply = client.stream_reply(text="calculate 2+3*4", context=CONTEXT)
    seen: list[ModelEvent] = []
    for event in reply:
        seen.append(event)
        if event == ToolEvent("calculate", "started"):
            break
    with pytest.raises(_UserPressedStop):
        _close_while_unwinding(reply, _UserPressedStop())
    with pytest.raises(openai.BadRequestError, match="No tool output found"):
        openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0).responses.create(
            model="gpt-5-mini",
            input=[
                {"type": "message", "role": "user", "content": "calculate 2+3*4"},
                {"type": "function_call", "call_id": "call_1", "name": "calculate", "arguments": '{"expression": "1"}'},
                {"type": "message", "role": "user", "content": "and 3+4?"},
            ],
        )

    events = list(
        client.stream_reply(
            text="and 3+4?", history=[("user", "calculate 2+3*4"), ("assistant", _text(seen))], context=CONTEXT
        )
    )

    assert isinstance(events[-1], ReplyCompleted)
    sent = _posts(server)[-1]["input"]
    assert [item["role"] for item in sent] == ["user", "user"]  # the stopped turn had shown no text


@pytest.mark.parametrize("provider", [ModelProvider.OPENAI, ModelProvider.OPENAI_COMPATIBLE])
def test_earlier_tool_exchanges_are_sent_as_call_and_output_pairs(
    server: OfflineModelServer, make_client: MakeClient, provider: ModelProvider
) -> None:
    server.state.profile = "openai" if provider is ModelProvider.OPENAI else "stateless"
    client = make_client(provider=provider)
    first = list(client.stream_reply(text="calculate 2+3*4", context=CONTEXT))
    [exchange] = [e for e in first if isinstance(e, ToolExchange)]
    assert (exchange.name, exchange.output) == ("calculate", "14")

    events = list(
        client.stream_reply(
            text="and doubled?",
            history=[("user", "calculate 2+3*4"), exchange, ("assistant", _text(first))],
            context=CONTEXT,
        )
    )

    assert isinstance(events[-1], ReplyCompleted)  # the strict server accepted the pair
    sent = _posts(server)[-1]["input"]
    assert [item["type"] for item in sent] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert sent[1]["call_id"] == sent[2]["call_id"] == exchange.call_id


def test_the_model_clients_log_lines_carry_the_invocations_correlation_id_and_user(
    server: OfflineModelServer, make_client: MakeClient
) -> None:
    from assistant.observability import logger as function_logger

    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(function_logger.registered_formatter)
    function_logger.addHandler(handler)
    function_logger.set_correlation_id("conn-1:req-1")
    function_logger.append_keys(userId="user-1")
    try:
        server.faults.push(Fault.status(503))
        list(make_client().stream_reply(text="hello there", context=CONTEXT))
    finally:
        function_logger.removeHandler(handler)
        function_logger.remove_keys(["userId"])
        function_logger.set_correlation_id(None)

    [retrying] = [json.loads(line) for line in lines.getvalue().splitlines() if "retrying" in line]
    assert retrying["correlation_id"] == "conn-1:req-1"
    assert retrying["userId"] == "user-1"
    assert retrying["call"] == "responses.create"


def test_without_stream_resume_a_dropped_background_stream_is_recovered_by_polling(
    server: OfflineModelServer, make_client: MakeClient, delays: list[float]
) -> None:
    # bedrock-mantle keeps background responses but is not documented to re-stream them.
    provider = ModelProvider.BEDROCK_MANTLE
    assert provider.capabilities.background
    assert not provider.capabilities.stream_resume
    server.pace = Pace(first_token_s=0, tokens_per_s=400)
    # Real sleeps: the poll waits for the response to finish generating server-side.
    client = make_client(provider=provider, recover_poll_interval_s=0.2, recover_max_wait_s=10, sleep=time.sleep)
    server.faults.push(Fault.cut_after_deltas(5))

    events = list(client.stream_reply(text=LONG_MESSAGE, context=CONTEXT))

    [started] = [e for e in events if isinstance(e, ResponseStarted)]
    assert _text(events) == _stored_text(server, started.response_id)
    assert isinstance(events[-1], ReplyCompleted)
    assert _resumed_streams(server) == []  # polled, never re-streamed
    assert _retrieves(server)
    assert len(_posts(server)) == 1


def test_replies_reuse_one_connection_to_the_model(server: OfflineModelServer, delays: list[float]) -> None:
    """A stream left unread after ``response.completed`` makes httpx drop its connection, so every reply would pay
    a new TCP (and, against a real provider, TLS) handshake before its first token."""
    http_client = httpx2.Client()
    pool = http_client._transport._pool  # type: ignore[attr-defined]
    created: list[object] = []
    create_connection = pool.create_connection

    def counted(*args: Any, **kwargs: Any) -> Any:
        created.append(args)
        return create_connection(*args, **kwargs)

    pool.create_connection = counted
    sdk = openai.OpenAI(api_key="test-key", base_url=server.base_url, http_client=http_client)
    client = ModelClient(sdk, NOT_RESUMABLE, default_registry(), sleep=delays.append)

    for text in ("hello there", "calculate 2+3*4", "hello again"):
        assert isinstance(list(client.stream_reply(text=text, context=CONTEXT))[-1], ReplyCompleted)

    assert len(_posts(server)) == 4  # three replies, one of them with a tool round
    assert len(created) == 1
