"""A measurement hook: what the worker itself counted for each reply, and how long it took, recorded in-process.

The benchmark's stack runs the handlers in this process (thread isolation), so while :func:`recording_worker_replies`
is active, every delivery the worker answers goes through a wrapper around ``ReplyService.handle`` that keeps the
:class:`~assistant.reply.ReplyOutcome` it returned (delta frames posted and checkpoint writes, the numbers the worker
also emits as metrics) and the wall time of the call, keyed by message id. Nothing in the stack knows about it; the
original method is put back when the block ends.

The wall time of ``handle`` is the worker's invocation less Powertools' batch wrapper around it (a few
milliseconds): from the claim to the finishing write, most of it waiting for the model's tokens.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from assistant.queue import QueuedMessage
from assistant.reply import ReplyOutcome, ReplyService


@dataclass(frozen=True)
class WorkerReply:
    """One message as the worker answered it, summed over its deliveries (one, unless SQS redelivered it)."""

    message_id: str
    deliveries: int
    #: ``delta`` (and ``reset``) frames the worker posted, per tab: ``ReplyOutcome.frames``.
    frames: int
    checkpoint_writes: int
    output_tokens: int
    #: Wall time of ``ReplyService.handle``, summed over the deliveries.
    duration_s: float
    #: ``ReplyResult`` of the last delivery (``raised`` if it raised, as a handed-back reply does).
    result: str


@dataclass(frozen=True)
class _Delivery:
    message_id: str
    outcome: ReplyOutcome | None
    duration_s: float


class WorkerReplyLog:
    """The deliveries recorded so far; written from the worker's threads, read from the benchmark's."""

    def __init__(self) -> None:
        self._deliveries: list[_Delivery] = []
        self._changed = threading.Condition()

    def add(self, delivery: _Delivery) -> None:
        with self._changed:
            self._deliveries.append(delivery)
            self._changed.notify_all()

    def wait_for(self, message_ids: Iterable[str], timeout_s: float) -> bool:
        """Whether every one of ``message_ids`` has a delivery that returned, within ``timeout_s``.

        The worker posts ``done`` before its finishing write, so a client can see the end of a reply slightly
        before ``handle`` returns: wait for that before reading the log.
        """
        wanted = set(message_ids)
        with self._changed:
            return self._changed.wait_for(lambda: wanted <= self._answered(), timeout=timeout_s)

    def _answered(self) -> set[str]:
        return {d.message_id for d in self._deliveries if d.outcome is not None}

    def replies(self, message_ids: Iterable[str]) -> list[WorkerReply]:
        """``message_ids``' replies, in that order; a message the worker never answered is an error."""
        with self._changed:
            deliveries = list(self._deliveries)
        replies = []
        for message_id in message_ids:
            mine = [d for d in deliveries if d.message_id == message_id]
            if not mine:
                raise LookupError(f"the worker never answered {message_id}")
            outcomes = [d.outcome for d in mine if d.outcome is not None]
            last = mine[-1].outcome
            replies.append(
                WorkerReply(
                    message_id=message_id,
                    deliveries=len(mine),
                    frames=sum(o.frames for o in outcomes),
                    checkpoint_writes=sum(o.checkpoint_writes for o in outcomes),
                    output_tokens=sum(o.output_tokens for o in outcomes),
                    duration_s=sum(d.duration_s for d in mine),
                    result="raised" if last is None else last.result.value,
                )
            )
        return replies


@contextmanager
def recording_worker_replies() -> Iterator[WorkerReplyLog]:
    """Record every ``ReplyService.handle`` call in this process until the block ends (measurement only)."""
    log = WorkerReplyLog()
    original = ReplyService.handle

    @functools.wraps(original)
    def timed_handle(self: ReplyService, queued: QueuedMessage, *args: Any, **kwargs: Any) -> ReplyOutcome:
        started = time.perf_counter()
        outcome: ReplyOutcome | None = None
        try:
            outcome = original(self, queued, *args, **kwargs)
            return outcome
        finally:
            log.add(_Delivery(queued.message_id, outcome, time.perf_counter() - started))

    ReplyService.handle = timed_handle  # type: ignore[method-assign]
    try:
        yield log
    finally:
        ReplyService.handle = original  # type: ignore[method-assign]
