"""Token estimates (assistant.token_estimates) against the offline model's exact counts, which count as real
tokenizers do (about four characters a token, tool specs as input: scripts/local_stack/offline_model/replies.py).

Where a server reports no usage, or a reply is stopped before it says what it cost, these estimates are what the
daily quotas are charged: they must land within ±25 % of what the server would have counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from assistant.definition import AssistantDefinition, load_definition
from assistant.model import (
    HistoryItem,
    ModelClient,
    ModelTimeouts,
    ReplyCompleted,
    ResponseUsage,
    StopReply,
    TextDelta,
)
from assistant.token_estimates import request_tokens, text_tokens
from assistant.tools import ToolContext, default_registry
from assistant.wiring import ModelProvider
from scripts.local_stack.offline_model import OfflineModelServer, Pace
from scripts.local_stack.offline_model.generation import count_input_tokens

CONTEXT = ToolContext(user_id="user-1", conversation_id=None, message_id="msg-1")
#: The packaged definition: its real instructions and tool specs are what every request carries.
PACKAGED = load_definition()
NOT_RESUMABLE = PACKAGED.model_copy(update={"resumable": False})

#: A long conversation (~3,000 tokens by the offline model's count), as earlier turns are sent each time.
LONG_HISTORY: list[HistoryItem] = [
    item
    for n in range(18)
    for item in (
        ("user", f"Question {n}: how do lighthouses, tides and harbour pilots keep ships safe at night in fog?"),
        (
            "assistant",
            f"Answer {n}: lighthouses mark hazards with characteristic flashes, tide tables tell pilots when the "
            "channel is deep enough, and pilots who know the harbour board incoming ships to steer them past shoals, "
            "using radar, buoys with lights and bells, and radio reports from the harbour master in poor visibility. "
            * 2,
        ),
    )
]


@pytest.fixture
def server() -> Iterator[OfflineModelServer]:
    with OfflineModelServer(pace=Pace.instant()) as running:
        yield running


def _client(server: OfflineModelServer, definition: AssistantDefinition, provider: ModelProvider) -> ModelClient:
    return ModelClient.create(
        api_key="test-key",
        base_url=server.base_url,
        definition=definition,
        tools=default_registry(),
        timeouts=ModelTimeouts(connect_s=2, read_s=5, write_s=2, pool_s=2),
        provider=provider,
    )


def _posts(server: OfflineModelServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.method == "POST" and r.path == "/v1/responses"]


def _stop_a_long_reply_after_its_first_words(client: ModelClient) -> list[ResponseUsage]:
    """A long reply over :data:`LONG_HISTORY`, stopped as the worker stops one at a user's Stop (the reply closed
    while a StopReply unwinds: assistant.model_response); what it was counted."""
    usages: list[ResponseUsage] = []
    reply = client.stream_reply(
        text="Tell me a long story about a brave dragon",
        history=LONG_HISTORY,
        context=CONTEXT,
        usage_sink=usages.append,
    )
    for event in reply:
        if isinstance(event, TextDelta):
            break
    try:
        raise StopReply
    except StopReply:
        reply.close()
    return usages


def _within(estimate: int, exact: int, tolerance: float = 0.25) -> bool:
    return abs(estimate - exact) <= tolerance * exact


@pytest.mark.parametrize(
    ("message", "history"),
    [
        pytest.param("Hello!", [], id="short-message"),
        pytest.param("Explain WebSockets and how they differ from long polling", [], id="explain"),
        pytest.param("Tell me a long story about a brave dragon", LONG_HISTORY, id="long-history"),
        pytest.param("What time is it in Tokyo?", LONG_HISTORY[:4], id="tool-round"),
    ],
)
def test_estimates_land_within_a_quarter_of_the_exact_counts(
    server: OfflineModelServer, message: str, history: list[HistoryItem]
) -> None:
    usages: list[ResponseUsage] = []
    client = _client(server, NOT_RESUMABLE, ModelProvider.OPENAI_COMPATIBLE)
    server.state.profile = "stateless"
    events = list(client.stream_reply(text=message, history=history, context=CONTEXT, usage_sink=usages.append))

    assert isinstance(events[-1], ReplyCompleted)
    posts = _posts(server)
    assert len(posts) == len(usages) >= 1
    for body, usage in zip(posts, usages, strict=True):
        assert not usage.estimated  # the offline model reports usage: these are its exact counts
        estimate = request_tokens(body["instructions"], body["input"], body.get("tools", ()))
        assert _within(estimate, usage.input_tokens), (estimate, usage.input_tokens)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert _within(text_tokens(text), usages[-1].output_tokens), (text_tokens(text), usages[-1].output_tokens)


@pytest.mark.parametrize(
    ("provider", "profile", "definition"),
    [
        pytest.param(ModelProvider.OPENAI_COMPATIBLE, "stateless", NOT_RESUMABLE, id="stateless-server"),
        pytest.param(ModelProvider.OPENAI, "openai", NOT_RESUMABLE, id="openai-streamed"),
    ],
)
def test_a_stopped_reply_over_a_long_conversation_counts_the_input_it_sent(
    server: OfflineModelServer, provider: ModelProvider, profile: Any, definition: AssistantDefinition
) -> None:
    """The reproduction in issue #21: a reply over a ~3,200-token conversation, stopped after its first words,
    counted 0 input tokens. A stopped stream reports nothing, so the estimate of what was sent is counted."""
    server.state.profile = profile
    server.state.pace = Pace(first_token_s=0.0, tokens_per_s=200.0, reasoning_s=0.0)
    usages = _stop_a_long_reply_after_its_first_words(_client(server, definition, provider))

    (usage,) = usages
    assert usage.estimated
    (body,) = _posts(server)
    # What the offline model would have counted for this request, had the reply not been stopped.
    exact = count_input_tokens(body["instructions"], _as_items(body["input"]), body.get("tools", ()))
    assert exact > 2_500
    assert _within(usage.input_tokens, exact), (usage.input_tokens, exact)
    assert usage.output_tokens >= 1


def _as_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items in the stored form the offline model counts (message content as text parts)."""
    stored = []
    for item in items:
        if item.get("type", "message") == "message" and isinstance(item.get("content"), str):
            item = {**item, "type": "message", "content": [{"type": "input_text", "text": item["content"]}]}
        stored.append(item)
    return stored


def test_a_stopped_background_reply_counts_what_the_provider_read_back_after_the_cancel(
    server: OfflineModelServer,
) -> None:
    """Where the provider keeps responses, the cancel is followed by a read of the response, whose usage (what it
    generated before the cancel) is counted rather than an estimate (the offline model's cancel answer carries no
    usage, its stored response does once the cancel settled)."""
    server.state.pace = Pace(first_token_s=0.0, tokens_per_s=200.0, reasoning_s=0.0)
    usages = _stop_a_long_reply_after_its_first_words(_client(server, PACKAGED, ModelProvider.OPENAI))

    (usage,) = usages
    stored = server.state.responses[usage.response_id].response
    assert stored["status"] == "cancelled"
    assert not usage.estimated
    assert (usage.input_tokens, usage.output_tokens) == (
        stored["usage"]["input_tokens"],
        stored["usage"]["output_tokens"],
    )
    assert usage.input_tokens > 2_500
    reads = [r.path for r in server.requests if r.method == "GET" and r.path == f"/v1/responses/{usage.response_id}"]
    assert len(reads) == 1
