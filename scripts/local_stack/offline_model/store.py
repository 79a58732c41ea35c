"""The offline model's memory: responses with their event logs, recorded requests, pace and faults.

A response's events are kept in a log that the generating task appends to and any number of HTTP streams read
from. That decoupling is what background mode needs: a stream that dies (client crash, scripted cut) stops reading,
but generation carries on to the end and the finished response stays retrievable, as on OpenAI. A response created
without background mode lives only as long as its connection: the app cancels it when the client leaves.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from scripts.local_stack.offline_model.faults import FaultPlan, Pace

logger = logging.getLogger(__name__)

#: ``openai``: OpenAI's dialect (stored responses, background mode, ``previous_response_id``).
#: ``stateless``: a vLLM/Ollama/LM Studio/llama.cpp-like server: ``POST /v1/responses`` only, nothing kept between
#: requests; ``background``, ``previous_response_id`` and ``store: true`` are refused with 400. Neither serves
#: conversations: a ``conversation`` is refused in both.
Profile = Literal["openai", "stateless"]
PROFILES: tuple[Profile, ...] = ("openai", "stateless")


class RecordedRequest(NamedTuple):
    """One request to ``/v1``: for tests that assert on what a client sent (never its headers: they hold the key)."""

    method: str
    #: Path with its query string, e.g. ``/v1/responses/resp_1?stream=true&starting_after=3``.
    path: str
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body}


def usage_json(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A Response's ``usage`` object, as OpenAI shapes it."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


class ResponseRun:
    """A response being (or having been) generated: the live Response object and the events that built it."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []
        self.finished = False
        #: The generating task, once started; cancelling the run cancels it.
        self.task: asyncio.Task[None] | None = None
        #: Every item the response was generated from (earlier responses, input), oldest first:
        #: what a later ``previous_response_id`` continues.
        self.context: list[dict[str, Any]] = []
        #: Tokens so far (as usage reports them): what a cancelled response is billed for.
        self.input_tokens = 0
        self.output_tokens = 0
        self._changed = asyncio.Event()

    @property
    def id(self) -> str:
        return str(self.response["id"])

    @property
    def background(self) -> bool:
        return bool(self.response.get("background"))

    def cancel(self) -> bool:
        """Stop generating: the response ends ``cancelled`` with what it had so far.

        Synchronous on the server's loop, so the status is final when this returns. ``False`` if it had already
        finished (then nothing changes).
        """
        if self.finished:
            return False
        self.response["status"] = "cancelled"
        for item in self.response["output"]:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        if self.task is not None:
            self.task.cancel()
        self.finish()
        return True

    def settle_usage(self) -> None:
        """A cancelled response is billed for what it generated before the cancel: its stored usage says so once
        the cancel has settled (the cancel's own answer carries none; a later retrieve reads it back)."""
        if self.response.get("status") == "cancelled" and self.response.get("usage") is None:
            self.response["usage"] = usage_json(self.input_tokens, self.output_tokens)

    def snapshot(self) -> dict[str, Any]:
        """A copy of the Response as it is now; later progress must not rewrite an event already logged."""
        return copy.deepcopy(self.response)

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": event_type, "sequence_number": len(self.events), **copy.deepcopy(fields)}
        self.events.append(event)
        self._wake()
        return event

    def finish(self) -> None:
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """Every event from the first, waiting for new ones, until the response is finished."""
        index = 0
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.finished:
                return
            await self._changed.wait()

    async def wait_finished(self) -> None:
        while not self.finished:
            await self._changed.wait()


@dataclass
class OfflineModelState:
    """Everything one offline model server knows. Faults and pace may be changed from another thread."""

    pace: Pace = field(default_factory=Pace)
    profile: Profile = "openai"
    faults: FaultPlan = field(default_factory=FaultPlan)
    requests: list[RecordedRequest] = field(default_factory=list)
    responses: dict[str, ResponseRun] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run work that must outlive the request that started it, keeping a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("offline model task %s crashed", task.get_name(), exc_info=task.exception())

    async def cancel_tasks(self) -> None:
        """Stop generations still running (server shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
