"""The deterministic Chat Completions backend, driven by the real ``openai`` SDK: the stand-in must refuse what
OpenAI refuses and stream what OpenAI streams, or the bridge tests in this package would prove nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any, cast

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.thirdparty.bridge import BRIDGE_PACKAGE, BRIDGE_PYTHON, bridge_version, require_bridge
from tests.thirdparty.chat_backend import API_KEY, MODEL, TOOL_NAME, ChatBackend, tool_answer, words

CALCULATE = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
    },
}
CALL = {"id": "call_1", "type": "function", "function": {"name": TOOL_NAME, "arguments": '{"expression": "6*7"}'}}


@pytest.fixture
def backend() -> Iterator[ChatBackend]:
    with ChatBackend() as running:
        yield running


def _client(backend: ChatBackend, api_key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=f"{backend.root_url}/v1", max_retries=0)


def _stream(backend: ChatBackend, messages: list[dict[str, Any]], **extra: Any) -> list[ChatCompletionChunk]:
    client = _client(backend)
    created = client.chat.completions.create(model=MODEL, messages=messages, stream=True, **extra)  # type: ignore[arg-type]
    with cast("openai.Stream[ChatCompletionChunk]", created) as stream:
        return list(stream)


def test_a_text_answer_streams_word_by_word_without_usage_unless_asked(backend: ChatBackend) -> None:
    chunks = _stream(backend, [{"role": "user", "content": "hi"}])
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == words("Turn 1: you said 'hi'.")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)

    with_usage = _stream(backend, [{"role": "user", "content": "hi"}], stream_options={"include_usage": True})
    usage = with_usage[-1].usage
    assert with_usage[-1].choices == []
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0


def test_a_tool_is_called_then_its_result_answered(backend: ChatBackend) -> None:
    chunks = _stream(backend, [{"role": "user", "content": "calculate 6*7"}], tools=[CALCULATE])
    fragments = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    functions = [fragment.function for fragment in fragments if fragment.function is not None]
    assert len(functions) == len(fragments)
    assert fragments[0].id == backend.state.calls[0][0]
    assert functions[0].name == TOOL_NAME
    assert json.loads("".join(f.arguments or "" for f in functions)) == {"expression": "6*7"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "calculate 6*7"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    chunks = _stream(backend, messages, tools=[CALCULATE])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == tool_answer("42")


def test_no_tool_call_when_none_is_offered_or_allowed(backend: ChatBackend) -> None:
    _stream(backend, [{"role": "user", "content": "calculate 6*7"}])
    _stream(backend, [{"role": "user", "content": "calculate 6*7"}], tools=[CALCULATE], tool_choice="none")
    assert backend.state.calls == []
    assert len(backend.state.answers) == 2


@pytest.mark.parametrize(
    ("messages", "refusal"),
    [
        pytest.param([], "too short", id="no messages"),
        pytest.param(
            [{"role": "user", "content": "calculate 6*7"}, {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
            "must be a response to a preceeding message with 'tool_calls'",
            id="tool result without its call",
        ),
        pytest.param(
            [
                {"role": "user", "content": "calculate 6*7"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "user", "content": "well?"},
            ],
            "must be followed by tool messages responding to each 'tool_call_id'",
            id="call without its result",
        ),
        pytest.param(
            [
                {"role": "user", "content": "calculate 6*7"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_2", "content": "42"},
            ],
            "must be a response to a preceeding message with 'tool_calls'",
            id="result of another call",
        ),
    ],
)
def test_what_openai_refuses_is_refused(backend: ChatBackend, messages: list[dict[str, Any]], refusal: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _stream(backend, messages, tools=[CALCULATE])
    assert refusal in refused.value.message
    assert backend.state.answers == []
    assert backend.state.calls == []


def test_a_wrong_key_is_refused(backend: ChatBackend) -> None:
    with pytest.raises(openai.AuthenticationError):
        _client(backend, api_key="wrong").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )


def test_the_installed_bridge_is_the_pinned_one() -> None:
    """A venv left from an earlier pin would test another bridge than the one requirements/bridge.txt names."""
    require_bridge()
    installed = subprocess.run(
        [str(BRIDGE_PYTHON), "-c", f"import importlib.metadata as m; print(m.version({BRIDGE_PACKAGE!r}))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert installed == bridge_version()
