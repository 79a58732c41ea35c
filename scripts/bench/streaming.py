"""Time to first visible text through the whole pipeline, and the model's own time to first token.

Pipeline: a real WebSocket client sends ``sendMessage`` and times the first ``delta`` frame (gateway, route
handler, DynamoDB, SQS FIFO, poller, worker, model, coalescer, ``@connections``, gateway again). Two users, one
sending short prompts and then one long ones, each waiting for ``done`` before the next message, after one warm-up
message each (the first message of a conversation also creates it with the model, and the first invocation of each
handler builds its clients). The users take turns rather than run at once: here every reply streams in the same
process on two cores, where a reply beside another waits for the interpreter and shows it as gaps between frames
that a Lambda worker, one reply per container, does not have (the throughput benchmark is where replies overlap).

Model: the same prompts, straight to the offline model with the ``openai`` SDK as the worker calls it (streaming,
``conversation=``), timed from the call to the first ``response.output_text.delta``.

The replies the client received also feed the frame comparison (:mod:`scripts.bench.frames`) and the gaps between
frames and the cost of streaming (:mod:`scripts.bench.streaming_cost`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scripts.bench.frames import FrameComparison
from scripts.bench.harness import ChatClient, RunningStack, chat_client, first_delta_at, new_users
from scripts.bench.markdown import markdown_table, ms
from scripts.bench.stats import Summary

ReplyKind = Literal["short", "long"]

#: Prompts the offline model answers in 30-60 tokens (no "long", "story", "explain", time or arithmetic words).
SHORT_PROMPTS = (
    "Hello there!",
    "I like green tea in the morning.",
    "Can you help me plan a trip to the coast?",
    "My cat sleeps on the keyboard.",
    "Is it going to rain tomorrow?",
    "Please remind me to water the plants.",
    "What do you think of jazz?",
    "I finished the quarterly report today.",
    "Recommend a good book for a train ride?",
    "The build is green again.",
)
#: Prompts the offline model answers in 350-400 tokens.
LONG_PROMPTS = (
    "Tell me a long story about a lighthouse keeper",
    "Explain how a FIFO queue keeps order",
    "Write a long essay about tidal energy",
    "Tell me a story about a lost umbrella",
)
MODEL_NAME = "bench-model"
_REPLY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Prompt:
    kind: ReplyKind
    text: str


def prompts(short_count: int, long_count: int) -> list[Prompt]:
    """``short_count`` short and ``long_count`` long prompts, cycling through the lists above."""
    shorts = [Prompt("short", SHORT_PROMPTS[i % len(SHORT_PROMPTS)]) for i in range(short_count)]
    longs = [Prompt("long", LONG_PROMPTS[i % len(LONG_PROMPTS)]) for i in range(long_count)]
    return shorts + longs


@dataclass(frozen=True)
class PipelineReply:
    prompt: Prompt
    message_id: str
    #: Seconds from sending ``sendMessage`` to the first ``delta`` frame / to ``done``.
    first_text_s: float
    done_s: float
    text: str
    output_tokens: int
    #: Payload bytes of each ``delta`` frame, in arrival order.
    delta_sizes: tuple[int, ...]
    #: Seconds from sending ``sendMessage`` to the arrival of each ``delta`` frame, in arrival order.
    delta_at_s: tuple[float, ...]
    #: Bytes of every frame of the reply (``delta`` and ``done``), for the totals.
    all_sizes: tuple[int, ...]


@dataclass(frozen=True)
class ModelTiming:
    prompt: Prompt
    first_token_s: float


class ReplyFailed(RuntimeError):
    """A benchmark reply did not finish cleanly: the numbers would be meaningless, so the run stops."""


async def ask(client: ChatClient, prompt: Prompt, message_id: str) -> PipelineReply:
    sent = await client.send_message(prompt.text, message_id)
    if not await client.wait_finished(message_id, _REPLY_TIMEOUT_S):
        raise ReplyFailed(f"no reply to {message_id} within {_REPLY_TIMEOUT_S:.0f} s")
    frames = [f for f in client.frames_for(message_id) if f.body.get("type") != "accepted"]
    final = frames[-1].body
    if final.get("type") != "done":
        raise ReplyFailed(f"{message_id} ended with {final}")
    deltas = [f for f in frames if f.body.get("type") == "delta"]
    first = first_delta_at(frames)
    if first is None:
        raise ReplyFailed(f"{message_id} has no text")
    return PipelineReply(
        prompt=prompt,
        message_id=message_id,
        first_text_s=first - sent.at,
        done_s=frames[-1].at - sent.at,
        text="".join(str(f.body["text"]) for f in sorted(deltas, key=lambda f: int(f.body["seq"]))),
        output_tokens=int(final["usage"]["outputTokens"]),
        delta_sizes=tuple(f.payload_bytes for f in deltas),
        delta_at_s=tuple(f.at - sent.at for f in deltas),
        all_sizes=tuple(f.payload_bytes for f in frames),
    )


async def _lane(stack: RunningStack, token: str, lane: list[Prompt], name: str) -> list[PipelineReply]:
    async with chat_client(stack.info, token) as client:
        await ask(client, Prompt("short", "Hi, this is a warm-up."), f"{name}-warmup")
        return [await ask(client, prompt, f"{name}-{i}") for i, prompt in enumerate(lane)]


async def run_pipeline(stack: RunningStack, batch: list[Prompt]) -> list[PipelineReply]:
    """The prompts through the local stack, the short ones and then the long ones, each kind on a user of its own."""
    shorts = [p for p in batch if p.kind == "short"]
    longs = [p for p in batch if p.kind == "long"]
    tokens = await new_users(stack.info, 2, "stream")
    replies = await _lane(stack, tokens[0], shorts, "short") if shorts else []
    if longs:
        replies += await _lane(stack, tokens[1], longs, "long")
    return replies


def _model_first_tokens(base_url: str, batch: list[Prompt]) -> list[ModelTiming]:
    import openai

    client = openai.OpenAI(api_key="bench", base_url=base_url, max_retries=0, timeout=30)
    try:
        timings: list[ModelTiming] = []
        for prompt in batch:
            started = time.perf_counter()
            stream = client.responses.create(
                # No provider-side conversation (the worker sends none either), so both offline profiles answer.
                model=MODEL_NAME,
                input=[{"type": "message", "role": "user", "content": prompt.text}],
                stream=True,
            )
            first: float | None = None
            try:
                for event in stream:
                    if event.type == "response.output_text.delta":
                        first = time.perf_counter() - started
                        break
            finally:
                # The model finishes the response on its side; we only needed its first token.
                stream.close()
            if first is None:
                raise ReplyFailed(f"the model streamed no text for {prompt.text!r}")
            timings.append(ModelTiming(prompt=prompt, first_token_s=first))
        return timings
    finally:
        client.close()


async def run_model_direct(stack: RunningStack, batch: list[Prompt]) -> list[ModelTiming]:
    """The same prompts straight to the model, one at a time, as the worker's SDK calls it (in a thread)."""
    return await asyncio.to_thread(_model_first_tokens, stack.model_base_url, batch)


@dataclass
class ProfileRun:
    """First text and frames of one latency batch against one offline model profile."""

    profile: str
    pipeline: list[PipelineReply]
    model: list[ModelTiming]
    frames: FrameComparison


def profiles_section(runs: Sequence[ProfileRun]) -> list[str]:
    rows = []
    for run in runs:
        pipe = Summary.of([r.first_text_s for r in run.pipeline])
        model = Summary.of([m.first_token_s for m in run.model])
        rows.append(
            [
                f"`{run.profile}`",
                str(len(run.pipeline)),
                ms(model.p50),
                ms(pipe.p50),
                ms(pipe.p50 - model.p50),
                ms(pipe.p95 - model.p95),
                f"{run.frames.frames_per_1000_tokens()[0]:,.0f}",
            ]
        )
    headers = [
        "offline profile",
        "n",
        "model first token p50",
        "first text p50",
        "overhead p50",
        "overhead p95",
        "frames / 1000 tokens",
    ]
    return [
        "## Both offline model profiles",
        "",
        "The latency prompts again against each dialect of the offline model, with the provider profile that matches "
        "it (`openai`: background responses; `stateless`: `POST /v1/responses` only, as vLLM or Ollama). Overhead is "
        "the pipeline's first text less the model's own first token, measured in the same run.",
        "",
        markdown_table(headers, rows),
        "",
    ]
