"""The offline model against the real ``openai`` SDK: what the model client and the local stack rely on.

Every event and object is also validated strictly against the SDK's pydantic types (the SDK itself builds them
without validation, so a missing field would otherwise go unnoticed until a real consumer tripped over it).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scripts.local_stack.offline_model import OFFLINE_MODEL_NAME, Fault, OfflineModelServer, Pace, start_async
from scripts.local_stack.offline_model.generation import Metronome
from scripts.local_stack.offline_model.replies import extract_expression, split_tokens, timezone_for, usage_tokens
from tests.unit.offline_model import CALC_TOOL

TIME_TOOL = {
    "type": "function",
    "name": "current_time",
    "description": "The current time in a time zone.",
    "parameters": {
        "type": "object",
        "properties": {"timezone": {"type": "string"}},
        "required": ["timezone"],
        "additionalProperties": False,
    },
}


@functools.cache
def _event_adapter() -> Any:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    # Building the adapter for the SDK's ~60-member event union is slow; build it once.
    return TypeAdapter(ResponseStreamEvent)


def strict_event(event: Any) -> Any:
    return _event_adapter().validate_python(event.to_dict())


def strict_response(response: Any) -> Any:
    from openai.types.responses import Response

    return Response.model_validate(response.to_dict())


def control(server: OfflineModelServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.root_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def stream_events(client: Any, **params: Any) -> list[Any]:
    return list(client.responses.create(model="gpt-test", stream=True, **params))


def deltas_of(events: list[Any]) -> list[str]:
    return [e.delta for e in events if e.type == "response.output_text.delta"]


# --- Streaming and stored responses -----------------------------------------------------------------------------


def test_streamed_text_reassembles_to_the_stored_response(client: Any) -> None:
    from openai.types.responses import (
        ResponseCompletedEvent,
        ResponseCreatedEvent,
        ResponseInProgressEvent,
        ResponseOutputItemAddedEvent,
        ResponseTextDeltaEvent,
    )

    events = stream_events(client, input="Hello there", metadata={"trace": "t-1"})

    for event in events:
        strict_event(event)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert isinstance(events[0], ResponseCreatedEvent)
    assert events[0].response.status == "in_progress"
    assert isinstance(events[1], ResponseInProgressEvent)
    assert isinstance(events[2], ResponseOutputItemAddedEvent)
    assert isinstance(events[-1], ResponseCompletedEvent)
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert len(deltas) > 5
    text = "".join(d.delta for d in deltas)
    assert "offline demo model" in text

    completed = events[-1].response
    assert completed.output_text == text
    # Usage counts tokens as real models do (about four characters each), not streamed words.
    assert completed.usage.output_tokens == usage_tokens(text) > len(deltas)
    assert completed.usage.total_tokens == completed.usage.input_tokens + completed.usage.output_tokens
    stored = strict_response(client.responses.retrieve(completed.id))
    assert stored.status == "completed"
    assert stored.output_text == text
    assert stored.model == OFFLINE_MODEL_NAME
    assert stored.metadata == {"trace": "t-1", "offline": "true", "requested_model": "gpt-test"}


def test_non_streaming_create_returns_the_completed_response(client: Any) -> None:
    response = strict_response(client.responses.create(model="gpt-test", input="Say something", instructions="Be kind"))

    assert response.status == "completed"
    assert response.model == OFFLINE_MODEL_NAME
    assert response.instructions == "Be kind"
    assert 'You said: "Say something"' in response.output_text
    # Instructions count as input, one token per word.
    assert response.usage.input_tokens == len(["Be", "kind"]) + len(["Say", "something"])


def test_replies_are_deterministic_and_long_only_when_asked(client: Any) -> None:
    short = client.responses.create(model="m", input="Hi!").output_text
    again = client.responses.create(model="m", input="Hi!").output_text
    story = client.responses.create(model="m", input="Tell me a long story about a brave dragon").output_text

    assert short == again
    assert len(short.split()) < 80
    assert len(story.split()) >= 300
    assert story.count("\n\n") >= 3
    assert "a brave dragon" in story


def test_streaming_can_be_replayed_from_a_sequence_number(client: Any) -> None:
    events = stream_events(client, input="Hello", background=True)
    response_id = events[0].response.id

    replay = list(client.responses.retrieve(response_id, stream=True, starting_after=3))

    assert [e.sequence_number for e in replay] == [e.sequence_number for e in events[4:]]
    assert replay[-1].type == "response.completed"


# --- Tools ------------------------------------------------------------------------------------------------------


def test_time_question_calls_the_tool_and_uses_its_output(client: Any) -> None:
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputItemDoneEvent

    events = stream_events(client, input="What time is it in Tokyo?", tools=[TIME_TOOL])
    for event in events:
        strict_event(event)

    done = [e for e in events if isinstance(e, ResponseOutputItemDoneEvent)]
    assert len(done) == 1
    call = done[0].item
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "current_time"
    assert json.loads(call.arguments) == {"timezone": "Asia/Tokyo"}
    arg_deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert arg_deltas == call.arguments
    assert events[-1].type == "response.completed"

    # Stateless round trip: the client sends the call back with its output.
    follow_up = client.responses.create(
        model="m",
        tools=[TIME_TOOL],
        input=[
            {"role": "user", "content": "What time is it in Tokyo?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "2026-05-01T09:30:00+09:00"},
        ],
    )
    assert follow_up.output_text == "According to the current_time tool, it is 2026-05-01T09:30:00+09:00 in Asia/Tokyo."


def test_calculation_calls_the_calculate_tool_with_the_expression(client: Any) -> None:
    response = client.responses.create(model="m", input="Please calculate 12 * (3 + 4) for me", tools=[CALC_TOOL])

    [call] = response.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"expression": "12 * (3 + 4)"}


def test_without_tools_the_model_answers_in_text(client: Any) -> None:
    response = client.responses.create(model="m", input="What time is it in Tokyo?")

    assert [item.type for item in response.output] == ["message"]
    assert "current_time tool" in response.output_text


def test_tool_output_without_its_call_is_refused(client: Any, openai: ModuleType) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(
            model="m", input=[{"type": "function_call_output", "call_id": "call_unknown", "output": "1"}]
        )
    assert raised.value.body["param"] == "input"


@pytest.mark.parametrize(
    ("message", "zone"),
    [
        ("what time is it in Tokyo", "Asia/Tokyo"),
        ("What's the time in New York?", "America/New_York"),
        ("current time in Europe/Lisbon please", "Europe/Lisbon"),
        ("what time is it", "UTC"),
    ],
)
def test_timezone_for_time_questions(message: str, zone: str) -> None:
    assert timezone_for(message) == zone


@pytest.mark.parametrize(
    ("message", "expression"),
    [
        ("calculate 12 * (3 + 4)", "12 * (3 + 4)"),
        ("what is 2+2?", "2+2"),
        ("compute (17.5 - 2) / 3 please", "(17.5 - 2) / 3"),
        ("how much is 3 \u00d7 7", "3 * 7"),
        ("calculate my taxes for 2024", None),
    ],
)
def test_extract_expression(message: str, expression: str | None) -> None:
    assert extract_expression(message) == expression


def test_the_pace_does_not_drift_when_every_sleep_overshoots() -> None:
    """Each token is due an interval after the one before was due: a loop that wakes 5 ms late every time still
    sends the 401st token 10 s after the first (at 40 tokens/s), not 12 s (the 5 ms added up 400 times)."""
    now = [100.0]
    metronome = Metronome(lambda: now[0])
    sent_at = [now[0]]
    for _ in range(400):
        now[0] += metronome.wait_s(1 / 40) + 0.005  # the sleep, then the event loop's lateness
        sent_at.append(now[0])
    assert sent_at[-1] - sent_at[0] == pytest.approx(10.005)
    # A pause (the loop was busy for half a second) is caught up, never overtaken: no token before it is due.
    now[0] += 0.5
    waits = [metronome.wait_s(1 / 40) for _ in range(25)]
    assert waits[:20] == [0.0] * 20
    assert waits[20] > 0


def test_tokens_reassemble_to_the_text() -> None:
    text = "  Hello,  world!\n\nNew paragraph. "
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert len(tokens) == 5


# --- Requests ---------------------------------------------------------------------------------------------------


def test_a_conversation_is_refused_and_an_unknown_response_is_not_found(client: Any, openai: ModuleType) -> None:
    # No Conversations API: the conversation is the caller's, sent as input.
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="m", input="hi", conversation="conv_1")
    assert raised.value.body == {
        "message": "Conversations are not supported by this server.",
        "type": "invalid_request_error",
        "param": "conversation",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.conversations.create()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")


def test_a_request_without_a_bearer_token_is_refused(server: OfflineModelServer) -> None:
    request = urllib.request.Request(server.base_url + "/responses", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 401
    assert json.loads(raised.value.read())["error"]["code"] == "invalid_api_key"


# --- Limits -----------------------------------------------------------------------------------------------------


def test_max_output_tokens_ends_incomplete(client: Any, server: OfflineModelServer) -> None:
    events = stream_events(client, input="Explain queues", max_output_tokens=16)

    for event in events:
        strict_event(event)
    # The limit is on usage tokens: generation stops at the first word that reaches it.
    streamed = deltas_of(events)
    assert usage_tokens("".join(streamed[:-1])) < 16 <= usage_tokens("".join(streamed))
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.usage.output_tokens == sum(usage_tokens(delta) for delta in streamed)
    assert final.response.output[0].status == "incomplete"
    assert final.response.output[0].content[0].text == "".join(deltas_of(events))


def test_previous_response_id_continues_that_response(client: Any, openai: ModuleType) -> None:
    first = client.responses.create(model="m", input="Hello")
    second = client.responses.create(model="m", input="Hello", previous_response_id=first.id)
    alone = client.responses.create(model="m", input="Hello")
    # The context is the first response's input and output plus the new input: a second user message, which the
    # canned reply counts (the same message without the earlier turn gets the first reply again).
    assert second.output_text != first.output_text
    assert alone.output_text == first.output_text

    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="m", input="hi", previous_response_id="resp_missing")
    assert missing.value.body["param"] == "previous_response_id"


def test_stateless_profile_serves_only_responses_and_reads_the_conversation_from_input(openai: ModuleType) -> None:
    with OfflineModelServer(pace=Pace.instant(), profile="stateless") as stateless:
        client = openai.OpenAI(api_key="test", base_url=stateless.base_url, max_retries=0)
        first = client.responses.create(model="m", input="Hello")
        second = client.responses.create(
            model="m",
            input=[
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": first.output_text},
                {"role": "user", "content": "Hello"},
            ],
        )
        # Its canned replies count the user messages it was sent: the second reply knows it is the second.
        assert second.output_text != first.output_text

        for refused in ({"background": True}, {"store": True}, {"previous_response_id": first.id}):
            with pytest.raises(openai.BadRequestError) as raised:
                client.responses.create(model="m", input="hi", **refused)
            assert raised.value.body["param"] == next(iter(refused))
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model="m", input="hi", conversation="conv_1")
        with pytest.raises(openai.NotFoundError):
            client.conversations.create()
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)


def test_max_output_tokens_below_the_api_floor_is_refused(client: Any, openai: ModuleType) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="m", input="hi", max_output_tokens=5)
    assert raised.value.body["param"] == "max_output_tokens"


# --- Faults -----------------------------------------------------------------------------------------------------


def test_status_faults_become_sdk_errors_and_are_consumed_in_order(
    client: Any, server: OfflineModelServer, openai: ModuleType
) -> None:
    server.faults.push(Fault.status(429, retry_after=2), Fault.status(500))

    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="m", input="hi", stream=True)
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="m", input="hi")
    assert client.responses.create(model="m", input="hi").status == "completed"
    assert len(server.state.responses) == 1


def test_the_sdk_retries_a_status_fault(openai: ModuleType, server: OfflineModelServer) -> None:
    retrying = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=1, timeout=10)
    server.faults.push(Fault.status(503, retry_after=0.01))

    assert retrying.responses.create(model="m", input="hi").status == "completed"
    assert [r.path for r in server.requests] == ["/v1/responses", "/v1/responses"]


def test_stall_times_out_the_client_and_creates_nothing(
    openai: ModuleType, server: OfflineModelServer, client: Any
) -> None:
    impatient = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.1)
    server.faults.push(Fault.stall(0.3))

    with pytest.raises(openai.APITimeoutError):
        impatient.responses.create(model="m", input="hi", stream=True)
    time.sleep(0.6)  # well past the stall: the server has looked and found the client gone
    assert server.state.responses == {}
    assert client.responses.create(model="m", input="hi").status == "completed"


def test_cut_stream_of_a_background_response_keeps_generating_server_side(
    client: Any, server: OfflineModelServer, openai: ModuleType
) -> None:
    server.pace = Pace(first_token_s=0.0, tokens_per_s=100)
    server.faults.push(Fault.cut_after_deltas(3))
    received: list[Any] = []

    stream = client.responses.create(model="m", input="Hello there, how are you?", stream=True, background=True)

    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)

    assert len(deltas_of(received)) == 3
    response_id = received[0].response.id
    assert client.responses.retrieve(response_id).status == "in_progress"
    wait_for(lambda: client.responses.retrieve(response_id).status == "completed")
    stored = strict_response(client.responses.retrieve(response_id))
    assert stored.background is True
    assert stored.output_text.startswith("".join(deltas_of(received)))
    assert len(stored.output_text.split()) > 3


def test_cut_stream_without_background_cancels_the_response(
    client: Any, server: OfflineModelServer, openai: ModuleType
) -> None:
    server.pace = Pace(first_token_s=0.0, tokens_per_s=100)
    server.faults.push(Fault.cut_after_deltas(3))
    received: list[Any] = []

    stream = client.responses.create(model="m", input="Tell me a long story about tides", stream=True)
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)

    response_id = received[0].response.id
    wait_for(lambda: client.responses.retrieve(response_id).status == "cancelled")
    time.sleep(0.2)  # 20 tokens' worth: a generation still running would show up below
    stored = strict_response(client.responses.retrieve(response_id))
    assert stored.status == "cancelled"
    assert stored.background is False
    # What was generated before the cut is kept, and nothing after it.
    assert stored.output_text.startswith("".join(deltas_of(received)))
    assert len(stored.output_text.split()) < 20
    assert stored.output[0].status == "incomplete"


def test_cut_without_streaming_drops_the_connection(
    client: Any, server: OfflineModelServer, openai: ModuleType
) -> None:
    server.pace = Pace(first_token_s=0.1, tokens_per_s=1000)
    server.faults.push(Fault.cut_after_deltas(0), Fault.cut_after_deltas(0))

    with pytest.raises(openai.APIConnectionError):
        client.responses.create(model="m", input="hi", background=True)
    with pytest.raises(openai.APIConnectionError):
        client.responses.create(model="m", input="hi")

    background, normal = server.state.responses.values()
    wait_for(lambda: background.finished and normal.finished)
    assert background.response["status"] == "completed"
    assert normal.response["status"] == "cancelled"


def test_a_background_response_outlives_its_client(client: Any, server: OfflineModelServer) -> None:
    server.pace = Pace(first_token_s=0.2, tokens_per_s=1000)
    stream = client.responses.create(model="m", input="Tell me a story about queues", stream=True, background=True)
    created = next(iter(stream))
    stream.close()

    assert client.responses.retrieve(created.response.id).status in ("queued", "in_progress")
    wait_for(lambda: client.responses.retrieve(created.response.id).status == "completed")
    assert len(client.responses.retrieve(created.response.id).output_text.split()) >= 300


def test_a_response_without_background_stops_when_its_client_leaves(client: Any, server: OfflineModelServer) -> None:
    # The client leaves while the model has not produced a token: nothing is written that could fail, and the
    # server must still notice.
    server.pace = Pace(first_token_s=0.5, tokens_per_s=1000)
    stream = client.responses.create(model="m", input="Tell me a story about queues", stream=True)
    created = next(iter(stream))
    stream.close()

    wait_for(lambda: client.responses.retrieve(created.response.id).status == "cancelled", timeout_s=0.4)
    time.sleep(0.3)  # past the first token: a generation still running would have produced it
    stored = client.responses.retrieve(created.response.id)
    assert stored.status == "cancelled"
    assert stored.output_text == ""


def test_a_non_streaming_response_stops_when_its_client_gives_up(
    openai: ModuleType, server: OfflineModelServer, client: Any
) -> None:
    server.pace = Pace(first_token_s=0.0, tokens_per_s=20)
    impatient = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.2)

    with pytest.raises(openai.APITimeoutError):
        impatient.responses.create(model="m", input="Tell me a long story about queues")

    [run] = server.state.responses.values()
    wait_for(lambda: run.finished)
    assert run.response["status"] == "cancelled"
    assert run.response["usage"] is None


def test_a_background_stream_starts_queued(client: Any) -> None:
    events = stream_events(client, input="Hello", background=True)

    for event in events:
        strict_event(event)
    assert [e.type for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0].response.status == "queued"
    assert events[0].response.background is True
    assert events[2].response.status == "in_progress"
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_a_background_create_without_streaming_answers_at_once(client: Any, server: OfflineModelServer) -> None:
    server.pace = Pace(first_token_s=0.05, tokens_per_s=1000)

    queued = strict_response(client.responses.create(model="m", input="Hello", background=True))

    assert queued.status == "queued"
    assert queued.output == []
    wait_for(lambda: client.responses.retrieve(queued.id).status == "completed")
    assert "offline demo model" in client.responses.retrieve(queued.id).output_text


def test_background_mode_requires_store(client: Any, openai: ModuleType, server: OfflineModelServer) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="m", input="hi", background=True, store=False)
    assert raised.value.body["param"] == "background"
    assert server.state.responses == {}


def test_cancel_stops_a_background_response(client: Any, server: OfflineModelServer) -> None:
    server.pace = Pace(first_token_s=0.0, tokens_per_s=50)
    stream = client.responses.create(model="m", input="Tell me a long story about tides", stream=True, background=True)
    events = iter(stream)
    response_id = next(events).response.id
    next(e for e in events if e.type == "response.output_text.delta")

    cancelled = strict_response(client.responses.cancel(response_id))

    assert cancelled.status == "cancelled"
    assert cancelled.background is True
    assert cancelled.usage is None
    # The open stream ends without a terminal event; the response generates nothing more.
    rest = list(events)
    assert all(e.type not in ("response.completed", "response.incomplete", "response.failed") for e in rest)
    text = client.responses.retrieve(response_id).output_text
    time.sleep(0.1)
    assert client.responses.retrieve(response_id).output_text == text
    assert len(text.split()) < 100
    # Idempotent: cancelling again returns the same cancelled response.
    assert client.responses.cancel(response_id).status == "cancelled"


def test_cancel_of_a_queued_background_response(client: Any, server: OfflineModelServer) -> None:
    server.pace = Pace(first_token_s=5.0, tokens_per_s=1000)
    queued = client.responses.create(model="m", input="Hello", background=True)

    assert client.responses.cancel(queued.id).status == "cancelled"
    run = server.state.responses[queued.id]
    assert run.finished
    assert run.task is not None
    wait_for(run.task.done)
    assert run.task.cancelled()
    assert client.responses.retrieve(queued.id).status == "cancelled"


def test_cancel_of_a_finished_background_response_changes_nothing(client: Any) -> None:
    done = stream_events(client, input="Hello", background=True)[-1].response

    again = strict_response(client.responses.cancel(done.id))

    assert again.status == "completed"
    assert again.output_text == done.output_text


def test_cancel_is_refused_for_a_response_without_background(client: Any, openai: ModuleType) -> None:
    response = client.responses.create(model="m", input="Hello")

    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.cancel(response.id)
    assert "background" in raised.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_missing")
    # A stored response without background mode is still retrievable.
    stored = strict_response(client.responses.retrieve(response.id))
    assert stored.status == "completed"
    assert stored.background is False


def test_error_event_ends_the_stream_and_fails_the_response(client: Any, server: OfflineModelServer) -> None:
    from openai.types.responses import ResponseErrorEvent

    server.faults.push(Fault.error_event(code="server_error", message="boom", after_deltas=2))

    events = stream_events(client, input="Hello")

    for event in events:
        strict_event(event)
    assert events[0].type == "response.created"
    assert len(deltas_of(events)) == 2
    assert isinstance(events[-1], ResponseErrorEvent)
    assert (events[-1].code, events[-1].message) == ("server_error", "boom")
    stored = client.responses.retrieve(events[0].response.id)
    assert stored.status == "failed"
    assert stored.error.message == "boom"


def test_error_event_fault_without_streaming_is_a_server_error(
    client: Any, server: OfflineModelServer, openai: ModuleType
) -> None:
    server.faults.push(Fault.error_event(message="boom"))
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="m", input="hi")


def test_failed_fault_ends_with_response_failed(client: Any, server: OfflineModelServer) -> None:
    from openai.types.responses import ResponseFailedEvent

    server.faults.push(Fault.failed("rate_limit_exceeded", "slow down"))

    events = stream_events(client, input="Hello")

    for event in events:
        strict_event(event)
    assert deltas_of(events) == []
    assert isinstance(events[-1], ResponseFailedEvent)
    assert events[-1].response.status == "failed"
    assert (events[-1].response.error.code, events[-1].response.error.message) == ("rate_limit_exceeded", "slow down")


def test_incomplete_fault_ends_with_response_incomplete(client: Any, server: OfflineModelServer) -> None:
    from openai.types.responses import ResponseIncompleteEvent

    server.faults.push(Fault.incomplete("content_filter", after_deltas=4))

    events = stream_events(client, input="Hello")

    for event in events:
        strict_event(event)
    assert len(deltas_of(events)) == 4
    assert isinstance(events[-1], ResponseIncompleteEvent)
    assert events[-1].response.incomplete_details.reason == "content_filter"
    assert client.responses.retrieve(events[0].response.id).status == "incomplete"


# --- Control over HTTP ------------------------------------------------------------------------------------------


def test_http_control_endpoints_steer_the_server(client: Any, server: OfflineModelServer, openai: ModuleType) -> None:
    faults = [{"kind": "status", "code": 429}, {"kind": "stall", "seconds": 0}]
    assert control(server, "POST", "/_control/faults", faults) == (200, {"pending": 2})
    assert [f["kind"] for f in control(server, "GET", "/_control/faults")[1]] == ["status", "stall"]
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="m", input="hi")
    assert control(server, "DELETE", "/_control/faults") == (200, {"pending": 0})
    assert len(server.faults) == 0

    status, body = control(server, "POST", "/_control/faults", [{"kind": "melt"}])
    assert status == 400
    assert "error" in body

    assert control(server, "POST", "/_control/pace", {"first_token_s": 0.5, "tokens_per_s": 1000}) == (
        200,
        {"first_token_s": 0.5, "tokens_per_s": 1000.0, "reasoning_s": 0.0},
    )
    assert server.pace == Pace(first_token_s=0.5, tokens_per_s=1000.0, reasoning_s=0.0)
    # A field left out keeps its value; 0 is the one spelling of "no pause", null is refused.
    assert control(server, "POST", "/_control/pace", {"reasoning_s": 2.5})[1]["reasoning_s"] == 2.5
    assert server.pace == Pace(first_token_s=0.5, tokens_per_s=1000.0, reasoning_s=2.5)
    assert control(server, "POST", "/_control/pace", {"tokens_per_s": None})[0] == 400
    assert control(server, "POST", "/_control/pace", {"tokens_per_s": -1})[0] == 400
    unpaced = control(server, "POST", "/_control/pace", {"first_token_s": 0, "tokens_per_s": 0, "reasoning_s": 0})
    assert unpaced == (200, {"first_token_s": 0.0, "tokens_per_s": 0.0, "reasoning_s": 0.0})
    assert server.pace == Pace.instant()

    client.responses.create(model="m", input="recorded")
    recorded = control(server, "GET", "/_control/requests")[1]
    assert recorded[-1]["method"] == "POST"
    assert recorded[-1]["path"] == "/v1/responses"
    assert recorded[-1]["body"]["input"] == "recorded"
    assert server.requests[-1].body["input"] == "recorded"
    assert control(server, "DELETE", "/_control/requests") == (200, [])
    assert server.requests == []


# --- Running ----------------------------------------------------------------------------------------------------


async def test_start_async_serves_inside_the_callers_loop(openai: ModuleType) -> None:
    running = await start_async(pace=Pace.instant())
    try:
        client = openai.AsyncOpenAI(base_url=running.base_url, api_key="test", max_retries=0, timeout=10)
        stream = await client.responses.create(model="m", input="Hello", stream=True)
        events = [event async for event in stream]
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == "".join(deltas_of(events))
        await client.close()
    finally:
        await running.close()


def test_a_taken_port_fails_start(server: OfflineModelServer) -> None:
    with pytest.raises(OSError, match="address already in use"):
        OfflineModelServer(port=server.port).start()


def test_command_line_server_is_steered_from_another_process(openai: ModuleType) -> None:
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.local_stack.offline_model", "--port", "0", "--tokens-per-s", "0"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        root = base_url.removesuffix("/v1")
        request = urllib.request.Request(
            root + "/_control/faults", data=json.dumps([{"kind": "status", "code": 429}]).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read()) == {"pending": 1}
        client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=10)

        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="m", input="hi")
        assert client.responses.create(model="m", input="hi").model == OFFLINE_MODEL_NAME
    finally:
        process.terminate()
        process.wait(timeout=5)
