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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scripts.bench.harness import RunningStack
from scripts.bench.streaming import MODEL_NAME, Prompt, ReplyFailed
from scripts.local_stack.offline_model import OfflineModelState

if TYPE_CHECKING:
    from openai import AsyncOpenAI


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
