"""The original's design, replayed against the same offline model: no streaming, wait for the whole answer, poll.

The original created a run and polled the Assistants API for it with exponential backoff: the first poll 0.8 s
after the start, each wait 1.5 times the previous, capped at 10 s. Only the poll that sees the run complete lets
the user see anything (the whole answer at once). Here a non-streaming ``responses.create`` runs in a background
task (the offline model generates server-side at the configured pace) and a polling loop follows that schedule
with ``GET /v1/responses/{id}`` through the ``openai`` SDK. A Response id is known once the model has registered
the request, as a run id was known as soon as ``runs.create`` returned; the loop reads it from the in-process
model's state by a metadata tag, so every poll is still a real HTTP round trip.

This favours the baseline: it skips the original's queue, Lambda and (broken) push entirely.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scripts.bench.harness import RunningStack
from scripts.bench.markdown import markdown_table, ms, times
from scripts.bench.stats import Summary, ratio
from scripts.bench.streaming import MODEL_NAME, Prompt, ReplyFailed
from scripts.local_stack.offline_model import OfflineModelState

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from scripts.bench.report import Results


@dataclass(frozen=True)
class BackoffSchedule:
    first_s: float = 0.8
    factor: float = 1.5
    cap_s: float = 10.0

    def poll_times(self) -> Iterator[float]:
        """Seconds after the start at which the original polls: 0.8, 2.0, 3.8, 6.5, 10.55, ..."""
        elapsed, wait = 0.0, self.first_s
        while True:
            elapsed += wait
            yield elapsed
            wait = min(wait * self.factor, self.cap_s)


ORIGINAL_BACKOFF = BackoffSchedule()
_TAG = "bench_poll_tag"
#: Enough polls to cover a minute; a reply that is not done by then fails the run instead of looping on.
_MAX_POLLS = 12


@dataclass(frozen=True)
class PolledReply:
    prompt: Prompt
    #: Seconds from the start until the poll that first saw the response completed: when the user sees text.
    seen_s: float
    #: Seconds from the start until the model had actually finished (the non-streaming call returned).
    completed_s: float
    polls: int
    output_tokens: int


def _response_id(state: OfflineModelState, tag: str) -> str | None:
    # The stack's loop inserts into this dict from its thread; list() copies it in one step under the GIL.
    for run in list(state.responses.values()):
        if (run.response.get("metadata") or {}).get(_TAG) == tag:
            return run.id
    return None


async def poll_one(
    client: AsyncOpenAI, state: OfflineModelState, prompt: Prompt, tag: str, schedule: BackoffSchedule
) -> PolledReply:
    started = time.perf_counter()
    completed_at: list[float] = []

    async def create() -> int:
        response = await client.responses.create(
            model=MODEL_NAME, input=prompt.text, metadata={_TAG: tag}, stream=False
        )
        completed_at.append(time.perf_counter())
        return response.usage.output_tokens if response.usage else 0

    creation = asyncio.create_task(create(), name=f"create {tag}")
    try:
        for polls, poll_at in enumerate(itertools.islice(schedule.poll_times(), _MAX_POLLS), start=1):
            await asyncio.sleep(max(0.0, started + poll_at - time.perf_counter()))
            response_id = _response_id(state, tag)
            if response_id is None:
                continue
            response = await client.responses.retrieve(response_id)
            if response.status == "completed":
                seen = time.perf_counter() - started
                output_tokens = await asyncio.wait_for(creation, timeout=30)
                return PolledReply(
                    prompt=prompt,
                    seen_s=seen,
                    completed_s=completed_at[0] - started,
                    polls=polls,
                    output_tokens=output_tokens,
                )
        raise ReplyFailed(f"{tag} was not complete after {_MAX_POLLS} polls")
    finally:
        if not creation.done():
            creation.cancel()


async def run_polling_baseline(
    stack: RunningStack, batch: list[Prompt], *, parallel: int = 8, schedule: BackoffSchedule = ORIGINAL_BACKOFF
) -> list[PolledReply]:
    """Every prompt through the polling design, ``parallel`` at a time (the model paces each reply on its own)."""
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=stack.model_base_url, max_retries=0, timeout=90)
    slots = asyncio.Semaphore(parallel)

    async def one(index: int, prompt: Prompt) -> PolledReply:
        async with slots:
            return await poll_one(client, stack.model_state, prompt, f"poll-{index}", schedule)

    try:
        return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(batch))))
    finally:
        await client.close()


def latency_rows(pipeline: Sequence[float], model: Sequence[float], polling: Sequence[float]) -> list[list[str]]:
    """p50/p95 of the three ways to first visible text, each with its ratio to the model's own first token."""
    model_summary = Summary.of(model)
    rows = []
    for name, samples in (
        ("model's own first token (baseline)", model),
        ("pipeline: sendMessage → first delta frame", pipeline),
        ("original design: poll until complete", polling),
    ):
        summary = Summary.of(samples)
        rows.append(
            [
                name,
                str(summary.n),
                ms(summary.p50),
                ms(summary.p95),
                times(ratio(summary.p50, model_summary.p50)),
                times(ratio(summary.p95, model_summary.p95)),
            ]
        )
    return rows


def latency_section(results: Results) -> list[str]:
    out = ["## Time to first visible text", ""]
    kinds = [("all", None), ("short replies", "short"), ("long replies", "long")]
    for title, kind in kinds:
        pipe = [r.first_text_s for r in results.pipeline if kind is None or r.prompt.kind == kind]
        model = [m.first_token_s for m in results.model if kind is None or m.prompt.kind == kind]
        poll = [p.seen_s for p in results.polling if kind is None or p.prompt.kind == kind]
        if not (pipe and model and poll):
            continue
        out += [f"**{title}**", ""]
        headers = ["path", "n", "p50", "p95", "p50 ÷ model p50", "p95 ÷ model p95"]
        out += [markdown_table(headers, latency_rows(pipe, model, poll)), ""]
    if results.pipeline and results.model and results.polling:
        pipe_p50 = Summary.of([r.first_text_s for r in results.pipeline]).p50
        model_p50 = Summary.of([m.first_token_s for m in results.model]).p50
        poll_p50 = Summary.of([p.seen_s for p in results.polling]).p50
        completed = Summary.of([p.completed_s for p in results.polling])
        out += [
            f"Pipeline overhead at p50: **{ms(pipe_p50 - model_p50)}** on top of the model's first token. "
            f"The original design shows the first text **{times(ratio(poll_p50, pipe_p50))} later** than this "
            f"pipeline at p50 (it must wait for the whole reply, p50 {ms(completed.p50)}, then for the next poll of "
            f"its schedule: first after {ORIGINAL_BACKOFF.first_s:g} s, x{ORIGINAL_BACKOFF.factor:g}, capped at "
            f"{ORIGINAL_BACKOFF.cap_s:g} s). Pipeline time to `done`: p50 "
            f"{ms(Summary.of([r.done_s for r in results.pipeline]).p50)}.",
            "",
        ]
    return out
